"""The event vocabulary: every fact skillops stores, as one tagged union of msgspec Structs.

Each type's encoded form carries its name in the ``type`` field (the union's tag) and is
stored beside a ``schema`` number. When a type's shape changes, bump its ``SCHEMA`` and
register an upcaster in :mod:`skillopsd.events._codec`; old rows are upcast on read and
never rewritten.

Groups (DESIGN.md section 4):

- capture: ``TranscriptLineCaptured`` and the source-file lifecycle (tracked, moved, reset)
  and ``CaptureErrorRecorded``. A captured line is the raw truth a rederive replays.
- derivation: ``SessionDerived``, ``SpanDerived``, ``DeriveErrorRecorded``, stamped with the
  deriver version that produced them; the newest version's output for a session is current.
- human: ``AnnotationAdded`` / ``AnnotationRetracted``; ``SessionPurged``; ``PayloadsErased``
  (the one event that changes stored bytes: it destroys earlier payloads, never their digests).
- evals: ``EvalSuiteRegistered``, ``EvalRunCompleted`` (per-case, per-grader results inside),
  ``ReplayRunCompleted`` (one agent run of ``eval replay``).
- versions: ``SkillVersionCreated``, ``SkillChallengerStarted``, ``SkillRouted``,
  ``SkillExecutionRecorded``, ``SkillPromoted``, ``SkillRetired``, ``SkillRolledBack``,
  ``SkillManaged``, ``SkillUnmanaged``, ``SkillLiveRemoved``, ``SkillStrategySet``,
  ``GateEvaluated``.
- policy: ``PolicySet``: anything that changes what a projection computes.

Times inside payloads are ISO 8601 UTC strings as the producer saw them; projections read
them as data and never consult the clock.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

Agent = Literal["claude", "codex", "gemini", "copilot", "cursor", "opencode"]
Outcome = Literal["success", "failure", "blocked"]
Label = Literal["good", "bad", "blocked", "neutral"]
SpanKind = Literal["CHAIN", "LLM", "TOOL", "SKILL", "AGENT"]
AttributeValue = str | int | float | bool | None | list[str]
PolicyValue = str | int | float | bool | None


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="type"):
    """Base of every event payload; subclasses are the vocabulary."""

    SCHEMA: ClassVar[int] = 1


# --- capture ---------------------------------------------------------------------------


class TranscriptLineCaptured(Event, frozen=True):
    """One complete line of an agent transcript, exactly as read (after redaction).

    The file it came from is ``source_id``; its path is in that source's
    ``SourceFileTracked`` / ``SourceFileMoved`` events (a path changes, the source does not).
    """

    agent: str
    source_id: str
    generation: int
    offset: int
    line: bytes
    captured_at: str
    session: str = ""
    json_ok: bool = True
    redactions: int = 0


class SourceFileTracked(Event, frozen=True):
    """A transcript file seen for the first time (or a new generation of one)."""

    agent: str
    source_id: str
    path: str
    device: int
    inode: int
    fingerprint: str
    generation: int
    session: str = ""
    parent_session: str = ""


class SourceFileMoved(Event, frozen=True):
    """A tracked file found under a new path (e.g. Codex archiving); not read again."""

    source_id: str
    old_path: str
    new_path: str


class SourceFileReset(Event, frozen=True):
    """A tracked file was truncated or replaced; reading restarts as a new generation."""

    source_id: str
    path: str
    reason: Literal["truncated", "replaced"]
    previous_offset: int
    new_generation: int


class CaptureErrorRecorded(Event, frozen=True):
    """A byte range that could not be stored as a line (oversized, unreadable...)."""

    agent: str
    source_id: str
    path: str
    offset: int
    length: int
    kind: str
    message: str
    generation: int = 1


# --- derivation ------------------------------------------------------------------------


class TokenUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts as the agent reported them; ``None`` means not reported, never zero."""

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_creation: int | None = None


class SessionDerived(Event, frozen=True):
    """The deriver's summary of one session at one deriver version."""

    session_id: str
    agent: str
    native_session_id: str
    deriver_version: int
    title: str | None = None
    cwd: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    turns: int = 0
    tools: int = 0
    skills: list[str] = []
    tokens: TokenUsage = TokenUsage()
    # What ``tokens`` cover when it is less than, or other than, every response's own usage
    # (Copilot's per-run totals, subagents known only by their final response); None: all of it.
    tokens_note: str | None = None
    span_ids: list[str] = []
    parent_session_id: str | None = None
    # Set when this thread turned out to be a child of another session (a Codex thread whose
    # parent was captured later): it is shown inside that session, no longer on its own.
    merged_into: str | None = None


class SpanDerived(Event, frozen=True):
    """One span of a session's tree (OpenTelemetry GenAI attribute names)."""

    session_id: str
    deriver_version: int
    span_id: str
    trace_id: str
    parent_span_id: str | None
    kind: SpanKind
    name: str
    start: str | None = None
    end: str | None = None
    outcome: Outcome | None = None
    attributes: dict[str, AttributeValue] = {}


class DeriveErrorRecorded(Event, frozen=True):
    """A record the deriver could not make sense of; derivation went on without it."""

    session_id: str
    deriver_version: int
    source_id: str
    offset: int
    message: str


# --- human -----------------------------------------------------------------------------


class AnnotationAdded(Event, frozen=True):
    """A human judgement of a session (optionally of one skill or span in it)."""

    annotation_id: str
    session_id: str
    label: Label
    note: str = ""
    author: str = ""
    skill: str | None = None
    span_id: str | None = None


class AnnotationRetracted(Event, frozen=True):
    """Withdraws an earlier annotation; the original stays in the log."""

    annotation_id: str
    author: str = ""
    reason: str = ""


class SessionPurged(Event, frozen=True):
    """A session removed from every projection; its captured lines stay in the log."""

    session_id: str
    author: str = ""
    reason: str = ""


class PayloadsErased(Event, frozen=True):
    """Payload bytes of earlier events destroyed on request; their digests stay in the chain."""

    positions: list[int]  # events whose payloads are erased (ascending)
    reason: str
    author: str
    scope: str  # "session" | "source" | "retention"
    session_ids: list[str] = []
    source_ids: list[str] = []


# --- evals -----------------------------------------------------------------------------


class EvalSuiteRegistered(Event, frozen=True):
    """The exact ``evals.yaml`` text a skill version is graded against."""

    skill: str
    suite_hash: str
    path: str
    definition: str


class GraderResult(msgspec.Struct, frozen=True, kw_only=True):
    """One grader's verdict on one session."""

    session_id: str
    index: int
    type: str
    name: str | None = None
    passed: bool
    detail: str = ""


class EvalCaseResult(msgspec.Struct, frozen=True, kw_only=True):
    """A case over every graded session: passed iff all its graders passed on all of them."""

    suite: str
    case: str
    graded: int
    passed_sessions: int
    passed: bool
    results: list[GraderResult] = []
    # Sessions the case selected but could not judge (no label, no duration): not in
    # ``graded``, no results. ``passed`` needs graded > 0 and passed/graded >= min_pass_rate.
    not_graded: int = 0
    min_pass_rate: float = 1.0
    not_graded_reasons: list[str] = []  # why, distinct ("not labelled")


class EvalRunCompleted(Event, frozen=True):
    """One ``eval run``: keyed by skill and the version content hash the sessions loaded."""

    run_id: str
    skill: str
    version_hash: str
    suite_hash: str
    deriver_version: int
    sessions: list[str]
    passed: bool
    cases: list[EvalCaseResult] = []
    baseline_run_id: str | None = None
    # The suites graded and every suite the file held: a run of fewer is a narrower run.
    suites: list[str] = []
    all_suites: list[str] = []
    suite_path: str = ""
    author: str = ""
    # "" when the run graded every captured session of the skill; else the selection it was
    # limited to (``--last 3``): such a run never changes executions, the gate or skill show.
    scope: str = ""
    # Set when the sessions graded are the runs of one ``eval replay`` (ReplayRunCompleted).
    replay_id: str = ""


class ReplayRunCompleted(Event, frozen=True):
    """One run of ``eval replay``: a version's body given to the agent's own CLI on one case.

    ``status``: completed | failed (non-zero exit) | timeout | no-transcript | error (could
    not start or set up) | interrupted (Ctrl-C). Every run is recorded, whatever its end;
    ``session_id`` is the captured session of the transcript it wrote, if any.
    """

    replay_id: str
    run_id: str
    skill: str
    version_hash: str
    suite_hash: str
    suite: str
    case: str
    repeat: int
    agent: str
    command: list[str]
    status: str
    exit_status: int | None = None
    wall_ms: int = 0
    session_id: str | None = None
    transcripts: list[str] = []
    error: str = ""
    started_at: str = ""
    author: str = ""


# --- versions --------------------------------------------------------------------------


class SkillVersionCreated(Event, frozen=True):
    """A skill body seen for the first time; identified by sha256 of its normalized body."""

    skill: str
    version_hash: str
    tag: int
    # The normalized body (masked as captured); empty when the deriver did not see it whole.
    body: str = ""
    parent_hash: str | None = None
    author: Literal["human", "machine"] = "human"
    origin: str = ""
    # observed: first loaded in a captured session; imported / edited: the version store.
    source: Literal["observed", "imported", "edited"] = "observed"
    first_session: str | None = None
    directory: str | None = None
    # The whole SKILL.md as imported or edited (frontmatter kept, masked as capture masks),
    # so the store can write the file an agent loads; empty for an observed body.
    file_text: str = ""
    confidence: int | None = None


class SkillChallengerStarted(Event, frozen=True):
    """A version enters an A/B test against the champion; stats count from here."""

    skill: str
    version_hash: str
    champion_hash: str
    test_id: str
    # The SKILL.md as given, for a body first observed in a session (which had none).
    file_text: str = ""


class ArmInput(msgspec.Struct, frozen=True, kw_only=True):
    """One arm as the router saw it: the counts a routing decision was computed from."""

    version_hash: str
    executions: int
    successes: int


class PoolShare(msgspec.Struct, frozen=True, kw_only=True):
    """One machine's part of a pooled test: the executions of each arm it counted."""

    machine: str
    champion_executions: int
    champion_successes: int
    challenger_executions: int
    challenger_successes: int


class TeamGuardrail(msgspec.Struct, frozen=True, kw_only=True):
    """A cost guardrail of a team decision as its rule saw it (medians of reported values)."""

    metric: str
    champion_reported: int
    challenger_reported: int
    champion_median: float | None = None
    challenger_median: float | None = None


class TeamDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A decision taken once on a team's pooled test (the server's row, as every machine
    records it): everything the rule decided from, so it can be recomputed without the
    server. ``blocks`` holds the time blocks as [champion n, k, challenger n, k]."""

    test_id: str
    skill: str
    champion_hash: str
    challenger_hash: str
    started_at: str
    decided_by: str
    outcome: str
    reason: str
    shares: list[PoolShare]
    blocks: list[list[int]]
    guardrails: list[TeamGuardrail]
    params: dict[str, float]


class SkillRouted(Event, frozen=True):
    """A routing decision with everything needed to recompute it."""

    skill: str
    routing_id: str
    algorithm: str
    seed: int
    chosen_hash: str
    params: dict[str, PolicyValue] = {}
    draws: dict[str, float] = {}
    probability: float | None = None
    session_id: str | None = None
    # The inputs (champion first), the posterior or scores per arm, and the experiment.
    arms: list[ArmInput] = []
    scores: dict[str, float] = {}
    experiment_id: str | None = None
    # Stream version of the newest skill event the decision follows.
    after_version: int = 0
    # On a machine of a team (a sync URL set) during a test: ``team`` when the arms are the
    # pooled counts of every machine (``shares``, this machine's included, summing to
    # ``arms``; ``team_test`` the server's test), ``local`` when the server did not answer
    # (``pool_note`` says why) and the arms are this machine's. None: not in a team.
    pool: str | None = None
    shares: list[PoolShare] = []
    team_test: str | None = None
    pool_note: str = ""


class SkillExecutionRecorded(Event, frozen=True):
    """The outcome of one session that ran a given skill version."""

    skill: str
    version_hash: str
    session_id: str
    outcome: Outcome | None
    tokens: int | None = None
    duration_ms: int | None = None
    # Where the outcome came from: eval | label | verdict | manual; ``signal`` is the raw
    # value (a label, a verdict such as ``abandoned``, an eval run id).
    source: str = ""
    signal: str = ""
    execution_id: str = ""
    # The event id of the execution record this one corrects (the same execution).
    supersedes: str | None = None
    session_started_at: str | None = None
    # USD of the session's model responses when every one was priced (pricing/), else None.
    cost_usd: float | None = None


class SkillPromoted(Event, frozen=True):
    """A version becomes champion (by the gate, the bandit, or a recorded force)."""

    skill: str
    version_hash: str
    previous_hash: str | None = None
    reason: str = ""
    forced: bool = False
    gate_run_id: str | None = None
    author: str = ""
    # author ``team``: the team's decision on the pooled test, as the server holds it.
    team: TeamDecision | None = None


class SkillRetired(Event, frozen=True):
    """A version leaves rotation; its file and tag stay."""

    skill: str
    version_hash: str
    reason: str = ""
    # retire (the test found it worse) | inconclusive (horizon reached) | by hand.
    decision: str = ""
    experiment_id: str | None = None
    author: str = ""
    # author ``team``: the team's decision on the pooled test, as the server holds it.
    team: TeamDecision | None = None


class SkillManaged(Event, frozen=True):
    """A skill handed to the version store: its champion and the live files agents load."""

    skill: str
    champion_hash: str
    live_paths: list[str] = []
    imported_from: str = ""
    author: str = ""
    # The SKILL.md as imported, for a body first observed in a session (which had none).
    file_text: str = ""


class SkillUnmanaged(Event, frozen=True):
    """A skill handed back: nothing is routed or written any more; its live files stay as
    they are and its history stays in the log (``skill import`` manages it again)."""

    skill: str
    author: str = ""
    reason: str = ""


class SkillLiveRemoved(Event, frozen=True):
    """Files agents no longer load a managed skill from: never written again, left as they are."""

    skill: str
    live_paths: list[str] = []
    author: str = ""


class SkillStrategySet(Event, frozen=True):
    """How a managed skill routes: ``thompson``, ``ucb1`` or ``champion-only``."""

    skill: str
    strategy: str
    author: str = ""


class SkillRolledBack(Event, frozen=True):
    """The champion returns to an earlier version."""

    skill: str
    from_hash: str
    to_hash: str
    reason: str = ""
    author: str = ""


class GateEvaluated(Event, frozen=True):
    """The promotion gate's decision for one version and the run it rested on."""

    skill: str
    version_hash: str
    cleared: bool
    run_id: str | None = None
    reason: str = ""
    # The evidence the decision rested on.
    suite_hash: str | None = None
    min_sessions: int | None = None
    sessions_graded: list[str] = []
    run_passed: bool | None = None
    forced: bool = False
    author: str = ""


class SkillRecordRejected(Event, frozen=True):
    """A record in the skill's stream that cannot be counted (a negative or impossible cost),
    named once, so the store skips it openly instead of failing on it forever."""

    skill: str
    event_id: str
    reason: str


# --- policy ----------------------------------------------------------------------------


class PolicySet(Event, frozen=True):
    """Settings a projection computes with (thresholds, priors); the newest per name wins."""

    name: str
    values: dict[str, PolicyValue]
    author: str = ""


AnyEvent = (
    TranscriptLineCaptured
    | SourceFileTracked
    | SourceFileMoved
    | SourceFileReset
    | CaptureErrorRecorded
    | SessionDerived
    | SpanDerived
    | DeriveErrorRecorded
    | AnnotationAdded
    | AnnotationRetracted
    | SessionPurged
    | PayloadsErased
    | EvalSuiteRegistered
    | EvalRunCompleted
    | ReplayRunCompleted
    | SkillVersionCreated
    | SkillChallengerStarted
    | SkillRouted
    | SkillExecutionRecorded
    | SkillPromoted
    | SkillRetired
    | SkillRolledBack
    | SkillManaged
    | SkillUnmanaged
    | SkillLiveRemoved
    | SkillStrategySet
    | GateEvaluated
    | PolicySet
    | SkillRecordRejected
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in AnyEvent.__args__}
