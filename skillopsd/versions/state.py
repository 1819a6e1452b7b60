"""One skill's version store as the log says it is: a pure fold of its ``skill:<name>`` stream.

Everything the store shows, routes with and decides on is folded here from events only (no
clock, no files), so the manifest, ``skill versions``, the router's inputs and
``verify-routing``'s recomputation agree by construction. A stream holds tens to hundreds of
events per skill, so folding it on demand is cheap and needs no checkpoint.

Experiments: a ``SkillChallengerStarted`` opens one between the champion of that moment and
the challenger. An execution counts in it when it ran one of its two arms *after* the test
began: a session by its transcript's own start time (``session_started_at``, the time the
agent wrote, never when skillops captured it: a backfill of February sessions captured
today is not part of a test started today), a manual record by its log position. A session
with no start time cannot be placed, so it never counts in a test (it still counts all-time).
A promotion, retirement, rollback or any change of champion ends it.
Corrections: an execution record naming the one it ``supersedes`` replaces it (same
execution, same experiment), so a changed signal is never counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from ..events import RecordedEvent
from ..events.types import (
    PoolShare,
    SkillChallengerStarted,
    SkillExecutionRecorded,
    SkillLiveRemoved,
    SkillManaged,
    SkillPromoted,
    SkillRecordRejected,
    SkillRetired,
    SkillRolledBack,
    SkillRouted,
    SkillStrategySet,
    SkillUnmanaged,
    SkillVersionCreated,
)

STRATEGIES = ("thompson", "ucb1", "champion-only")
# The largest cost one execution may report: beyond any real session (a billion tokens, ten
# years), far inside what every layer stores exactly.
MAX_TOKENS = 10**12
MAX_DURATION_MS = 10**12
DEFAULT_STRATEGY = "thompson"
# Event types whose arrival changes what the router would decide.
ROUTING_INPUTS = frozenset(
    {
        "SkillManaged",
        "SkillStrategySet",
        "SkillChallengerStarted",
        "SkillExecutionRecorded",
        "SkillPromoted",
        "SkillRetired",
        "SkillRolledBack",
    }
)


class Stats(msgspec.Struct, kw_only=True):
    """Executions with a known outcome, and the costs of those that reported them."""

    executions: int = 0
    successes: int = 0
    failures: int = 0
    tokens_total: int = 0
    tokens_reported: int = 0
    duration_ms_total: int = 0
    duration_reported: int = 0


class Execution(msgspec.Struct, kw_only=True):
    """The current record of one execution (a session, or one manual record)."""

    key: str
    event_id: str
    version_hash: str
    outcome: str | None
    source: str
    signal: str
    session_id: str
    tokens: int | None
    duration_ms: int | None
    experiment_id: str | None
    position: int
    # Where the execution was first recorded: its place in the test's order (a correction of
    # its outcome does not move it to another time block).
    first_position: int = 0
    cost_usd: float | None = None
    # When it ran: the session's transcript start, else (a manual record) when it was
    # recorded; orders a pooled test's executions from several machines.
    started_at: str | None = None


class Version(msgspec.Struct, kw_only=True):
    """One version of the skill."""

    tag: int
    content_hash: str
    created_at: str
    position: int
    author: str
    confidence: int | None
    parent: str | None
    source: str
    body: str
    file_text: str
    directory: str | None
    retired: bool = False
    retired_reason: str = ""
    # The newest experiment this version took part in (its stats in the manifest are that
    # experiment's); None: never tested, all-time stats.
    experiment: str | None = None


class Experiment(msgspec.Struct, kw_only=True):
    """A champion-versus-challenger test."""

    experiment_id: str
    champion: str
    challenger: str
    started_at: str
    position: int
    ended: str | None = None


class Routing(msgspec.Struct, kw_only=True):
    """The newest routing decision."""

    routing_id: str
    chosen: str
    after_version: int
    position: int
    # A team machine's routing during a test: on the pool (``team``, each machine's counts
    # in ``shares``) or on its own counts (``local``: the server did not answer).
    experiment_id: str | None = None
    pool: str | None = None
    shares: list[PoolShare] = []
    team_test: str | None = None


class SkillState(msgspec.Struct, kw_only=True):
    """A skill's store, folded from its stream."""

    skill: str
    managed: bool = False
    live_paths: list[str] = []
    imported_from: str = ""
    strategy: str = DEFAULT_STRATEGY
    champion: str | None = None
    challenger: str | None = None
    experiment: str | None = None
    experiments: dict[str, Experiment] = {}
    versions: dict[str, Version] = {}
    executions: dict[str, Execution] = {}
    # Event id of each execution record folded (for ``supersedes``) -> its execution key.
    records: dict[str, str] = {}
    # Execution records that cannot be counted -> why; and those already named in the log.
    rejected: dict[str, str] = {}
    rejections: set[str] = set()
    # Every version that has been champion (a rollback may return to one without the gate).
    champions: set[str] = set()
    stream_version: int = 0
    # Stream version of the newest event that changes routing inputs.
    state_version: int = 0
    routing: Routing | None = None

    def by_tag(self) -> list[Version]:
        """Versions, oldest tag first."""
        return sorted(self.versions.values(), key=lambda v: v.tag)

    def next_tag(self) -> int:
        """Max + 1: a retired version keeps its tag, so tags never collide."""
        return max((v.tag for v in self.versions.values()), default=0) + 1

    def resolve(self, ref: str) -> Version | None:
        """A version by tag (``v3``), full hash, or a unique hash prefix (6+ characters)."""
        text = ref.strip()
        if text[:1] in ("v", "V") and text[1:].isdigit():
            return next((v for v in self.versions.values() if v.tag == int(text[1:])), None)
        if text in self.versions:
            return self.versions[text]
        found = [v for h, v in self.versions.items() if len(text) >= 6 and h.startswith(text)]
        return found[0] if len(found) == 1 else None

    def stats(self, version_hash: str, experiment_id: str | None) -> Stats:
        """Known outcomes of a version within an experiment (None: all time)."""
        out = Stats()
        for e in self.executions.values():
            if e.version_hash != version_hash or e.outcome is None:
                continue
            if experiment_id is not None and e.experiment_id != experiment_id:
                continue
            out.executions += 1
            if e.outcome == "success":
                out.successes += 1
            else:
                out.failures += 1
            if e.tokens is not None:
                out.tokens_total += e.tokens
                out.tokens_reported += 1
            if e.duration_ms is not None:
                out.duration_ms_total += e.duration_ms
                out.duration_reported += 1
        return out

    def tag_of(self, version_hash: str | None) -> str | None:
        """``vN`` of a hash (None when unknown)."""
        v = self.versions.get(version_hash or "")
        return f"v{v.tag}" if v else None

    def body_file(self, version_hash: str) -> str:
        """The SKILL.md text of a version as the store writes it.

        An imported or edited version is its file as it was; an observed one (the body the
        agent was shown, without frontmatter) borrows the frontmatter of the newest version
        that has one, so the agent still finds the skill's name and description.
        """
        v = self.versions[version_hash]
        if v.file_text:
            return v.file_text if v.file_text.endswith("\n") else v.file_text + "\n"
        front = ""
        for other in sorted(self.versions.values(), key=lambda o: -o.tag):
            if other.file_text.startswith("---"):
                end = other.file_text.find("\n---", 3)
                if end >= 0:
                    front = other.file_text[: end + 4].rstrip() + "\n\n"
                    break
        return f"{front}{v.body}\n"


def _end(state: SkillState, how: str) -> None:
    if state.experiment is not None:
        state.experiments[state.experiment].ended = how
    state.experiment = None
    state.challenger = None


def apply(state: SkillState, event: RecordedEvent) -> None:
    """Fold one event of the skill's stream into ``state``."""
    state.stream_version = event.stream_version
    if event.type in ROUTING_INPUTS:
        state.state_version = event.stream_version
    if event.erased:
        return
    p = event.payload
    if isinstance(p, SkillVersionCreated):
        if p.version_hash in state.versions:
            return
        state.versions[p.version_hash] = Version(
            tag=p.tag,
            content_hash=p.version_hash,
            created_at=event.recorded_at,
            position=event.position,
            author=p.author,
            confidence=p.confidence,
            parent=p.parent_hash,
            source=p.source,
            body=p.body,
            file_text=p.file_text,
            directory=p.directory,
        )
    elif isinstance(p, SkillManaged):
        state.managed = True
        state.live_paths = sorted(set(state.live_paths) | set(p.live_paths))
        state.imported_from = p.imported_from or state.imported_from
        if state.champion is None:
            state.champion = p.champion_hash
            state.champions.add(p.champion_hash)
        _file(state, p.champion_hash, p.file_text)
    elif isinstance(p, SkillUnmanaged):
        _end(state, "unmanaged")
        state.managed = False
        state.live_paths = []
    elif isinstance(p, SkillLiveRemoved):
        state.live_paths = sorted(set(state.live_paths) - set(p.live_paths))
    elif isinstance(p, SkillStrategySet):
        state.strategy = p.strategy
    elif isinstance(p, SkillChallengerStarted):
        _end(state, "superseded")
        state.challenger = p.version_hash
        state.experiment = p.test_id
        state.experiments[p.test_id] = Experiment(
            experiment_id=p.test_id,
            champion=p.champion_hash,
            challenger=p.version_hash,
            started_at=event.recorded_at,
            position=event.position,
        )
        for digest in (p.version_hash, p.champion_hash):
            if digest in state.versions:
                state.versions[digest].experiment = p.test_id
        if p.version_hash in state.versions:
            state.versions[p.version_hash].retired = False
        _file(state, p.version_hash, p.file_text)
    elif isinstance(p, SkillExecutionRecorded):
        _execution(state, event, p)
    elif isinstance(p, SkillRecordRejected):
        state.rejections.add(p.event_id)
    elif isinstance(p, SkillRouted):
        state.routing = Routing(
            routing_id=p.routing_id,
            chosen=p.chosen_hash,
            after_version=p.after_version,
            position=event.position,
            experiment_id=p.experiment_id,
            pool=p.pool,
            shares=list(p.shares),
            team_test=p.team_test,
        )
    elif isinstance(p, SkillPromoted):
        how = "promoted" if p.version_hash == state.challenger else "champion changed"
        if state.experiment is not None:
            _end(state, how)
        state.champion = p.version_hash
        state.champions.add(p.version_hash)
        if p.version_hash in state.versions:
            state.versions[p.version_hash].retired = False
    elif isinstance(p, SkillRetired):
        if p.version_hash in state.versions:
            version = state.versions[p.version_hash]
            version.retired = True
            version.retired_reason = p.reason
        if p.version_hash == state.challenger:
            _end(state, p.decision or "retired")
    elif isinstance(p, SkillRolledBack):
        _end(state, "rolled back")
        state.champion = p.to_hash
        state.champions.add(p.to_hash)
        if p.to_hash in state.versions:
            state.versions[p.to_hash].retired = False


def _file(state: SkillState, digest: str, text: str) -> None:
    """Give an observed version (a body without its file) the SKILL.md it was imported as."""
    version = state.versions.get(digest)
    if version is not None and text and not version.file_text:
        version.file_text = text


def invalid_execution(p: SkillExecutionRecorded) -> str | None:
    """Why an execution record cannot be counted (None when it can)."""
    for name, value, most in (
        ("tokens", p.tokens, MAX_TOKENS),
        ("duration_ms", p.duration_ms, MAX_DURATION_MS),
    ):
        if value is not None and not 0 <= value <= most:
            return f"{name}={value} is not a cost (0 to {most:,})"
    cost = getattr(p, "cost_usd", None)
    if cost is not None and not (math.isfinite(cost) and 0 <= cost <= 1e9):
        return f"cost_usd={cost} is not a cost (0 to 1e9)"
    if p.outcome not in ("success", "failure", None):
        return f"outcome {p.outcome!r} is not success or failure"
    return None


def _execution(state: SkillState, event: RecordedEvent, p: SkillExecutionRecorded) -> None:
    problem = invalid_execution(p)
    if problem is not None:
        state.rejected[event.event_id] = problem
        return
    key = p.execution_id or f"session:{p.session_id}"
    previous = state.executions.get(key)
    if p.supersedes is not None and state.records.get(p.supersedes) == key and previous:
        # A correction stays in the experiment of the execution it fixes (unless it turns out
        # to have run another version, which that experiment may not have tested).
        same = previous.version_hash == p.version_hash
        experiment = previous.experiment_id if same else None
    elif previous is not None:
        return  # a second record of the same execution that corrects nothing: ignored
    else:
        exp = state.experiments.get(state.experiment or "")
        experiment = (
            exp.experiment_id
            if exp is not None
            and p.version_hash in (exp.champion, exp.challenger)
            and in_window(exp, p)
            else None
        )
    state.records[event.event_id] = key
    state.executions[key] = Execution(
        key=key,
        event_id=event.event_id,
        version_hash=p.version_hash,
        outcome=p.outcome,
        source=p.source,
        signal=p.signal,
        session_id=p.session_id,
        tokens=p.tokens,
        duration_ms=p.duration_ms,
        experiment_id=experiment,
        position=event.position,
        first_position=previous.first_position if previous is not None else event.position,
        cost_usd=p.cost_usd,
        started_at=previous.started_at
        if previous is not None
        else (p.session_started_at or event.recorded_at),
    )


def instant(text: str | None) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (a naive one is UTC); None if it is not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def in_window(exp: Experiment, p: SkillExecutionRecorded) -> bool:
    """Whether an execution ran after the experiment began (the module docstring says how)."""
    if not p.session_id:
        return True  # a manual record: made now, after the start by its log position
    began, ran = instant(exp.started_at), instant(p.session_started_at)
    return began is not None and ran is not None and ran >= began


def fold(skill: str, events: Iterable[RecordedEvent]) -> SkillState:
    """The state after ``events`` (the skill's stream, in order)."""
    state = SkillState(skill=skill)
    for event in events:
        apply(state, event)
    return state


def window_start(exp: Experiment) -> str:
    """The experiment's start as the session tables store times (milliseconds, rounded up),
    so a text comparison of start times agrees with :func:`in_window`."""
    began = instant(exp.started_at)
    if began is None:
        return exp.started_at
    if began.microsecond % 1000:
        began += timedelta(microseconds=1000 - began.microsecond % 1000)
    return began.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
