"""Bringing one managed skill up to date: human edits, executions, decisions, routing, files.

Run by every store command and by the daemon after it catches up. Each step appends to the
skill's stream through :func:`~skillopsd.versions.store.append_checked`, with deterministic
event ids, so two processes syncing at once append each fact once:

1. a live file whose body no version has is a human edit: imported (``edited``) and made
   champion, never overwritten;
2. every settled session that loaded a version gets one ``SkillExecutionRecorded``; a signal
   that changed since (an eval run, a label) appends a correction naming the record it
   supersedes;
3. after each execution the decision rule looks at the running experiment; a promotion also
   needs the eval gate when the skill has an evals.yaml;
4. a ``SkillRouted`` whenever the routing inputs changed since the last one (its seed is
   derived from its id, which is derived from the state it follows);
5. the routed version's body goes to the live files and the store folder is materialized.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .._defaults import DEFAULT_SETTLE_SECONDS
from .._redact import holds_mask, redact_text
from ..derive._skills import skill_content_hash
from ..events import Database, EventLog, NewEvent, RecordedEvent, content_id
from ..events.types import (
    ArmInput,
    GateEvaluated,
    PoolShare,
    SkillExecutionRecorded,
    SkillPromoted,
    SkillRecordRejected,
    SkillRetired,
    SkillRouted,
)
from ._atomic import write_atomic
from ._bandit import decide_state, route_state, verify_routed
from .executions import Signal, settled, signals
from .gating import Gated, evaluate, gate_manifest
from .materialize import materialize, next_pick, store_root
from .policy import bandit_policy
from .state import MAX_DURATION_MS, MAX_TOKENS, SkillState, apply

if TYPE_CHECKING:
    from ..team.pool import Snapshot, TeamTest
    from .pooled import Others, Pool
from .store import append_checked, managed_state, new, promote_edit, read_state


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did."""

    skill: str
    executions: int = 0
    corrections: int = 0
    waiting: int = 0  # sessions that loaded the skill and have not settled yet
    decisions: list[str] = []
    edits: list[str] = []
    unsettled_edits: list[str] = []  # live files edited by hand moments ago
    invalid_edits: list[str] = []  # ...that do not declare the skill's name in frontmatter
    routed: str | None = None
    live_written: list[str] = []
    # Live files left as they are: the version due was stored masked (a hand edit holding a
    # secret) and would put ``[REDACTED:…]`` in the agent's skill, or the file holds a secret
    # the store keeps only masked, so overwriting it would lose the secret for good.
    live_masked: list[str] = []
    files_written: list[str] = []
    # A team machine during a test: ``team`` when it routed (and decided) on the pool,
    # ``local`` when the server did not answer (``pool_note`` says why).
    pool: str | None = None
    pool_note: str = ""

    def masked_notes(self) -> list[str]:
        """One line per live file left as it is because of a masked secret."""
        return [
            f"{path} left as it is, not {self.routed}: a secret in it or in {self.routed} is"
            " stored masked, so writing would lose it; edit it by hand"
            for path in self.live_masked
        ]


class _Team:
    """This machine's view of its team's pool during one sync (the server asked at most once
    for the pool, once more to write a decision)."""

    def __init__(self, db: Database, url: str) -> None:
        from ..team.sync import machine_id

        self.url = url
        self.me = machine_id(db) or ""
        self.snap: Snapshot | None = None
        self._others: tuple[str, Others] | None = None  # the other machines' part, folded once
        self.note = ""

    def snapshot(self, state: SkillState) -> Snapshot | None:
        """The server's pool for the test running in ``state`` (None: ask no more)."""
        from ..team.pool import PoolUnavailable, snapshot

        if self.snap is not None or self.note:
            return self.snap
        exp = state.experiments.get(state.experiment or "")
        if exp is None:
            return None
        try:
            self.snap = snapshot(
                self.url, state.skill, self.me, (exp.champion, exp.challenger, exp.started_at)
            )
        except PoolUnavailable as exc:
            self.note = str(exc)
        return self.snap

    def pool(self, state: SkillState) -> Pool | None:
        """The pooled test the test running in ``state`` belongs to (None: local counts)."""
        from ..team.pool import bind
        from .pooled import others, pool

        snap = self.snapshot(state)
        exp = state.experiments.get(state.experiment or "")
        if snap is None or exp is None:
            return None
        test = bind(snap.tests, exp.champion, exp.challenger, exp.started_at)
        if test is None:
            self.note = "the server holds no team test of this champion and challenger"
            return None
        if self._others is None or self._others[0] != test.test_id:
            self._others = (test.test_id, others(state.skill, snap, test))
        return pool(state, self.me, snap, test, self._others[1])

    def forget(self) -> None:
        """Read the server again (after this machine wrote to it)."""
        self.snap = None
        self._others = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# A live file must be this long unchanged before an edit of it is taken: an editor's save
# (truncate, then write) is never caught half-way.
EDIT_QUIET = 1.0
_NAME = re.compile(r"^name:\s*[\"']?([^\"'\n]*?)[\"']?\s*$", re.MULTILINE)


def frontmatter_name(text: str) -> str | None:
    """The ``name:`` of a SKILL.md's frontmatter (None when it has no complete frontmatter)."""
    body = text.lstrip("\ufeff").replace("\r\n", "\n")
    if not body.startswith("---\n"):
        return None
    end = body.find("\n---", 3)
    if end < 0:
        return None
    found = _NAME.search(body[4:end])
    return found.group(1).strip() if found else None


def _changed_within(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def _expected_name(state: SkillState) -> str:
    """The name a live file of the skill must declare: its champion file's, else the skill's."""
    champion = state.versions.get(state.champion or "")
    declared = frontmatter_name(champion.file_text) if champion and champion.file_text else None
    return declared or state.skill


def _edits(db: Database, state: SkillState, report: SyncReport) -> None:
    for live in state.live_paths:
        path = Path(live)
        text = _read(path)
        if text is None or not text.strip():
            continue
        if skill_content_hash(text) in state.versions:
            continue
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        # Still being written, or not (yet) a skill file of this skill: looked at again at the
        # next sync; never imported half-saved, never overwritten.
        if age < EDIT_QUIET:
            report.unsettled_edits.append(live)
            continue
        if frontmatter_name(text) != _expected_name(state):
            report.invalid_edits.append(live)
            continue
        digest = promote_edit(db, state.skill, path, text)
        if digest is not None:
            report.edits.append(live)


def _rejections(db: Database, skill: str) -> None:
    """Name each execution record the store cannot count, once, so it is skipped openly."""

    def build(state: SkillState) -> list[NewEvent]:
        return [
            new(
                skill,
                SkillRecordRejected(skill=skill, event_id=event_id, reason=reason),
                content_id("SkillRecordRejected", skill, event_id),
            )
            for event_id, reason in sorted(state.rejected.items())
            if event_id not in state.rejections
        ]

    append_checked(db, skill, build)


def _cost(value: int | None, most: int) -> int | None:
    """A session's reported cost, or missing when it cannot be one (never a made-up value)."""
    return value if value is not None and 0 <= value <= most else None


def _execution_event(
    state: SkillState, sig: Signal, supersedes: str | None
) -> tuple[NewEvent, str]:
    event = SkillExecutionRecorded(
        skill=state.skill,
        version_hash=sig.version_hash,
        session_id=sig.session_id,
        outcome=sig.outcome,  # type: ignore[arg-type]
        tokens=_cost(sig.tokens, MAX_TOKENS),
        duration_ms=_cost(sig.duration_ms, MAX_DURATION_MS),
        source=sig.source,
        signal=sig.signal,
        execution_id=f"session:{sig.session_id}",
        supersedes=supersedes,
        session_started_at=sig.started_at,
        cost_usd=sig.cost_usd,
    )
    event_id = content_id(
        "SkillExecutionRecorded",
        state.skill,
        sig.session_id,
        sig.version_hash,
        sig.outcome or "",
        sig.source,
        sig.signal,
        supersedes or "",
    )
    return new(state.skill, event, event_id), event_id


def _changed(state: SkillState, sig: Signal) -> tuple[bool, str | None]:
    """(whether to append, the record it supersedes)."""
    current = state.executions.get(f"session:{sig.session_id}")
    if current is None:
        return sig.outcome is not None, None
    same = (current.version_hash, current.outcome, current.source, current.signal) == (
        sig.version_hash,
        sig.outcome,
        sig.source,
        sig.signal,
    )
    return not same, current.event_id


def _executions(
    db: Database,
    skill: str,
    now: datetime,
    settle: float,
    report: SyncReport,
    team: _Team | None,
) -> None:
    with db.read() as conn:
        found = signals(conn, skill)
    state = read_state(db, skill)
    fresh = [s for s in found if f"session:{s.session_id}" not in state.executions]
    ready = settled(db, [s.session_id for s in fresh if s.outcome], now, settle) if fresh else set()
    due = []
    for sig in found:
        recorded = f"session:{sig.session_id}" in state.executions
        if not recorded and sig.outcome is not None and sig.session_id not in ready:
            report.waiting += 1
            continue
        due.append(sig)

    def build(st: SkillState) -> list[NewEvent]:
        # Outside a test nothing is decided, so the records go in one append; during a
        # test each goes alone and the rule looks after each one.
        events = []
        for sig in due:
            wanted, supersedes = _changed(st, sig)
            if wanted:
                events.append(_execution_event(st, sig, supersedes)[0])
                if st.experiment is not None:
                    break
        return events

    while due:
        before = read_state(db, skill)
        _state, appended = append_checked(db, skill, build)
        if not appended:
            return
        after = read_state(db, skill)
        for key, execution in after.executions.items():
            previous = before.executions.get(key)
            if previous is None:
                report.executions += 1
            elif previous.event_id != execution.event_id:
                report.corrections += 1
        if team is None:  # a team decides once per sync, on the pool (_decide_team)
            _decide(db, skill, report)
        done = {e.session_id for e in after.executions.values()}
        due = [s for s in due if s.session_id not in done or _changed(after, s)[0]]


def _gate(db: Database, state: SkillState, digest: str) -> GateEvaluated | None:
    """The eval gate for a bandit promotion; None when the skill has no suite to gate with."""
    tag = state.tag_of(digest) or digest[:12]
    try:
        manifest = gate_manifest(db, state.skill, None)
    except Gated as exc:
        if exc.absent:
            return None
        return GateEvaluated(
            skill=state.skill, version_hash=digest, cleared=False, reason=str(exc), author="bandit"
        )
    return evaluate(db, state.skill, digest, tag, manifest, "bandit")[1]


def _decide(db: Database, skill: str, report: SyncReport, team: _Team | None = None) -> None:
    if team is not None:
        _decide_team(db, skill, report, team)
        return
    said: list[str] = []
    policy = bandit_policy(db)

    def build(state: SkillState) -> list[NewEvent]:
        said.clear()
        decision = decide_state(state, policy)
        if decision is None or decision.outcome == "continue":
            return []
        assert state.challenger is not None and state.experiment is not None
        exp = state.experiment
        decided = content_id("decision", skill, exp)
        if decision.outcome == "promote":
            gate = _gate(db, state, state.challenger)
            if gate is not None and not gate.cleared:
                # Recorded once per distinct refusal; the test goes on until its horizon.
                refused = content_id("bandit-gate", skill, exp, gate.run_id or "", gate.reason)
                said.append(f"promotion of {state.tag_of(state.challenger)} refused by the gate")
                total = (
                    decision.statistic["champion_executions"]
                    + decision.statistic["challenger_executions"]
                )
                if total < policy.horizon:
                    return [new(skill, gate, refused)]
                said.append(f"inconclusive: {state.tag_of(state.challenger)}")
                ended = SkillRetired(
                    skill=skill,
                    version_hash=state.challenger,
                    reason=f"horizon of {policy.horizon} executions reached and the gate"
                    f" refused the promotion ({gate.reason}); the champion stays",
                    decision="inconclusive",
                    experiment_id=exp,
                    author="bandit",
                )
                return [new(skill, gate, refused), new(skill, ended, decided)]
            events = [new(skill, gate)] if gate is not None else []
            events.append(
                new(
                    skill,
                    SkillPromoted(
                        skill=skill,
                        version_hash=state.challenger,
                        previous_hash=state.champion,
                        reason=f"{decision.reason} (experiment {exp})",
                        gate_run_id=gate.run_id if gate else None,
                        author="bandit",
                    ),
                    decided,
                )
            )
            said.append(f"promoted {state.tag_of(state.challenger)}")
            return events
        said.append(f"{decision.outcome}: {state.tag_of(state.challenger)}")
        retired = SkillRetired(
            skill=skill,
            version_hash=state.challenger,
            reason=decision.reason,
            decision=decision.outcome,
            experiment_id=exp,
            author="bandit",
        )
        return [new(skill, retired, decided)]

    _state, appended = append_checked(db, skill, build)
    if appended:
        report.decisions.extend(said)


def _decide_team(db: Database, skill: str, report: SyncReport, team: _Team) -> None:
    """The decision rule once, on the pool: the first machine whose pooled rule crosses writes
    the team's decision; every machine records that one (if its counts give it)."""
    from ..team.pool import PoolUnavailable
    from ..team.pool import decide as write_decision
    from .pooled import propose, retests

    state = read_state(db, skill)
    if state.experiment is None or state.challenger is None:
        return
    found = team.pool(state)
    if found is None or team.snap is None:
        return
    policy = bandit_policy(db)
    exp = state.experiment
    test = found.test
    gate: GateEvaluated | None = None
    if test.outcome is None:
        decision, proposal = propose(found, policy, retests(team.snap.tests, test), team.me)
        if decision.outcome == "continue":
            return
        if decision.outcome == "promote":
            gate = _gate(db, state, state.challenger)
            if gate is not None and not gate.cleared:
                refused = content_id("bandit-gate", skill, exp, gate.run_id or "", gate.reason)
                append_checked(db, skill, lambda _s: [new(skill, gate, refused)])  # type: ignore[arg-type]
                report.decisions.append(
                    f"promotion of {state.tag_of(state.challenger)} refused by the gate"
                )
                total = sum(s.champion_executions + s.challenger_executions for s in found.shares)
                if total < policy.horizon:
                    return
                proposal = msgspec.structs.replace(
                    proposal,
                    outcome="inconclusive",
                    reason=f"horizon of {policy.horizon} executions reached and the gate"
                    f" refused the promotion ({gate.reason}); the champion stays",
                )
                gate = None
        try:
            test = write_decision(team.url, proposal)
        except PoolUnavailable as exc:
            team.note = str(exc)
            return
        team.forget()
    _adopt(db, skill, report, team, test, gate)


def _adopt(
    db: Database,
    skill: str,
    report: SyncReport,
    team: _Team,
    test: TeamTest,
    gate: GateEvaluated | None,
) -> None:
    """Record the team's decision of ``test`` here: the same decision on every machine."""
    from .pooled import check

    decided = test.decision
    if decided is None:
        report.pool_note = f"team test {test.test_id[:12]} holds a decision no rule wrote"
        return
    policy = bandit_policy(db)
    said: list[str] = []

    def build(state: SkillState) -> list[NewEvent]:
        said.clear()
        if state.experiment is None or state.challenger is None:
            return []
        problem = check(decided, state, policy, decided.outcome)
        if problem is not None:
            report.pool_note = f"not adopted: {problem}"
            return []
        exp = state.experiment
        event_id = content_id("decision", skill, exp)
        by = "this machine" if decided.decided_by == team.me else decided.decided_by[:12]
        why = f"team decision of test {decided.test_id[:12]} by {by}: {decided.reason}"
        if decided.outcome == "promote":
            mine = gate if gate is not None and decided.decided_by == team.me else None
            said.append(f"promoted {state.tag_of(state.challenger)} (team)")
            promoted = SkillPromoted(
                skill=skill,
                version_hash=state.challenger,
                previous_hash=state.champion,
                reason=f"{why} (experiment {exp})",
                gate_run_id=mine.run_id if mine else None,
                author="team",
                team=decided,
            )
            return [*([new(skill, mine)] if mine else []), new(skill, promoted, event_id)]
        said.append(f"{decided.outcome}: {state.tag_of(state.challenger)} (team)")
        retired = SkillRetired(
            skill=skill,
            version_hash=state.challenger,
            reason=why,
            decision=decided.outcome,
            experiment_id=exp,
            author="team",
            team=decided,
        )
        return [new(skill, retired, event_id)]

    _state, appended = append_checked(db, skill, build)
    if appended:
        report.decisions.extend(said)


def team_route_id(skill: str, state_version: int, test: str, shares: list[PoolShare]) -> str:
    """A pooled routing's id: the state it follows and the pool it routed on."""
    return content_id(
        "SkillRouted", skill, state_version, "team", test, msgspec.json.encode(shares)
    )


def _pooled_arms(state: SkillState, shares: list[PoolShare]) -> tuple[ArmInput, ArmInput]:
    from .pooled import summed

    assert state.champion is not None and state.challenger is not None
    champ, chall = summed(shares)
    return (
        ArmInput(
            version_hash=state.champion,
            executions=champ.executions,
            successes=champ.successes,
        ),
        ArmInput(
            version_hash=state.challenger,
            executions=chall.executions,
            successes=chall.successes,
        ),
    )


def route_id(skill: str, state_version: int) -> str:
    """A routing's id: fixed by the state it follows, so racing routers agree on one event."""
    return content_id("SkillRouted", skill, state_version)


def seed_of(routing_id: str) -> int:
    """The seed a routing draws with, derived from its recorded id (never the clock)."""
    return int(routing_id[:15], 16)


def _route(db: Database, skill: str, report: SyncReport, team: _Team | None) -> SkillState:
    policy = bandit_policy(db)

    def build(state: SkillState) -> list[NewEvent]:
        if state.champion is None:
            return []
        testing = team is not None and state.experiment is not None
        found = team.pool(state) if team is not None and testing else None
        if found is not None:
            report.pool = "team"
            rid = team_route_id(skill, state.state_version, found.test.test_id, found.shares)
            if state.routing is not None and state.routing.routing_id == rid:
                return []  # neither this machine nor the pool changed since
            event = route_state(state, rid, seed_of(rid), policy, _pooled_arms(state, found.shares))
            event = msgspec.structs.replace(
                event, pool="team", shares=found.shares, team_test=found.test.test_id
            )
            return [new(skill, event, rid)]
        if testing and team is not None:
            report.pool, report.pool_note = "local", team.note
        if state.routing is not None and state.routing.after_version >= state.state_version:
            return []  # nothing changed since: replay uses the recorded decision
        rid = route_id(skill, state.state_version)
        event = route_state(state, rid, seed_of(rid), policy)
        if testing and team is not None:
            event = msgspec.structs.replace(event, pool="local", pool_note=team.note)
        return [new(skill, event, rid)]

    append_checked(db, skill, build)
    state = read_state(db, skill)
    report.routed = state.tag_of(next_pick(state))
    return state


def _write_live(state: SkillState, report: SyncReport) -> None:
    chosen = next_pick(state)
    if chosen is None:
        return
    text_due = state.body_file(chosen)
    body = text_due.encode()
    for live in state.live_paths:
        path = Path(live)
        text = _read(path)
        if text is not None and text.strip():
            digest = skill_content_hash(text)
            if digest == chosen or digest not in state.versions:
                continue  # already routed, or a human edit the next sync imports
        if text is not None and not text.strip() and _changed_within(path, EDIT_QUIET):
            # An editor's save truncates, then writes: an empty file changed a moment ago may
            # be a hand edit half-way, and a write now (a rename) would send the rest of it to
            # the old file and lose it. The next sync looks again. (Partial text is no known
            # version's: it is left as a hand edit above.)
            report.unsettled_edits.append(live)
            continue
        if holds_mask(text_due) or (text is not None and redact_text(text) != text):
            report.live_masked.append(live)
            continue
        write_atomic(path, body)
        report.live_written.append(live)


def sync_skill(
    db: Database,
    skill: str,
    *,
    now: datetime,
    settle: float = DEFAULT_SETTLE_SECONDS,
    executions: bool = True,
    team: str | None = None,
) -> SyncReport:
    """Bring ``skill`` up to date (steps in the module docstring); the daemon's and CLI's.

    ``team``: the team server's URL; during a test the pool is read from it, the rule runs
    on the pool and routing uses the pooled counts (this machine's own when it does not
    answer; then nothing is decided until it does)."""
    state = managed_state(db, skill)
    report = SyncReport(skill=skill)
    crew = _Team(db, team) if team else None
    _edits(db, state, report)
    _rejections(db, skill)
    if executions:
        _executions(db, skill, now, settle, report, crew)
    _decide(db, skill, report, crew)
    state = _route(db, skill, report, crew)
    _write_live(state, report)
    report.files_written = [str(p) for p in materialize(store_root(db.path), state)]
    return report


def materialize_only(db: Database, skill: str) -> list[Path]:
    """Rewrite the store folder from the log without appending anything."""
    return materialize(store_root(db.path), managed_state(db, skill))


class Mismatch(msgspec.Struct, frozen=True):
    """A recorded routing or decision that the log does not reproduce."""

    position: int
    routing_id: str
    problem: str


class Verified(msgspec.Struct, kw_only=True):
    """What ``skill verify`` recomputed."""

    routings: int = 0
    decisions: int = 0
    mismatches: list[Mismatch] = []


def _check_decision(
    db: Database, state: SkillState, event: RecordedEvent, p: SkillPromoted | SkillRetired
) -> str | None:
    """Recompute a bandit promotion or retirement from the state before it and the policy in
    force at its position; None when it agrees."""
    policy = bandit_policy(db, upto=event.position)
    if state.challenger is None or p.version_hash != state.challenger:
        return f"{type(p).__name__} of {p.version_hash[:12]}, which was not the challenger in test"
    decision = decide_state(state, policy)
    if decision is None:
        return "no experiment was running"
    total = decision.statistic["champion_executions"] + decision.statistic["challenger_executions"]
    said = "promote" if isinstance(p, SkillPromoted) else (p.decision or "retire")
    allowed = {decision.outcome}
    if decision.outcome == "promote" and total >= policy.horizon:
        allowed.add("inconclusive")  # the horizon ends the test when the gate refuses
    if said not in allowed:
        return f"recorded {said}, the rule says {decision.outcome} ({decision.reason})"
    return None


def _machine(db: Database) -> str:
    from ..team.sync import machine_id

    return machine_id(db) or ""


def _check_shares(state: SkillState, p: SkillRouted, me: str) -> str | None:
    """Why a pooled routing's machines' counts do not stand (None when they do): this
    machine's must be what its log counts; the others' are what it read from the server."""
    from .pooled import local_share

    if state.experiment is None or state.champion is None or state.challenger is None:
        return "routed on a team's pool while no test was running"
    machines = [s.machine for s in p.shares]
    if len(set(machines)) != len(machines):
        return "a machine counted twice in the pool"
    for share in p.shares:
        if (
            min(
                share.champion_executions - share.champion_successes,
                share.challenger_executions - share.challenger_successes,
                share.champion_successes,
                share.challenger_successes,
            )
            < 0
        ):
            return f"machine {share.machine[:12]}: counts that cannot be"
    mine = [s for s in p.shares if s.machine == me]
    here = local_share(state, me)
    if not mine or mine[0] != here:
        found = mine[0] if mine else None
        return f"this machine's share recorded {_share(found)}, its log gives {_share(here)}"
    return None


def _share(s: PoolShare | None) -> str:
    if s is None:
        return "nothing"
    return (
        f"champion {s.champion_successes}/{s.champion_executions},"
        f" challenger {s.challenger_successes}/{s.challenger_executions}"
    )


def _check_team(
    db: Database, state: SkillState, event: RecordedEvent, p: SkillPromoted | SkillRetired
) -> str | None:
    """A team decision must end the test running here and follow from its stored counts
    under the policy in force at its position."""
    from .pooled import check

    if state.challenger is None or p.version_hash != state.challenger:
        return f"{type(p).__name__} of {p.version_hash[:12]}, which was not the challenger in test"
    if p.team is None:
        return "a team decision without the counts it was taken on"
    said = "promote" if isinstance(p, SkillPromoted) else (p.decision or "retire")
    return check(p.team, state, bandit_policy(db, upto=event.position), said)


def _check_routed(
    db: Database, state: SkillState, event: RecordedEvent, p: SkillRouted, me: str
) -> str | None:
    """Recompute one routing from the state before it (and, for a pooled one, the machines'
    counts it records); None when it agrees."""
    policy = bandit_policy(db, upto=event.position)
    cap = p.params.get("challenger_cap")
    pooled: tuple[ArmInput, ArmInput] | None = None
    expected = route_id(state.skill, state.state_version)
    if p.pool == "team":
        problem = _check_shares(state, p, me)
        if problem is not None:
            return problem
        pooled = _pooled_arms(state, p.shares)
        expected = team_route_id(state.skill, state.state_version, p.team_test or "", p.shares)
    if p.routing_id != expected or p.seed != seed_of(p.routing_id):
        return "id or seed does not follow from the state it routed"
    if state.challenger is not None and cap != policy.challenger_cap:
        return f"challenger_cap {cap} recorded, the policy in force says {policy.challenger_cap}"
    if state.challenger is not None and p.algorithm != state.strategy:
        return f"routed with {p.algorithm}, the skill's strategy is {state.strategy}"
    return verify_routed(state, p, pooled)


def verify_routing(db: Database, skill: str) -> Verified:
    """Recompute every ``SkillRouted`` and every bandit promotion or retirement of ``skill``
    from the state before it and the policy in force at its position; a champion change by
    a person must have passed the gate just before it, or be forced."""
    state = SkillState(skill=skill)
    out = Verified()
    cleared: str | None = None  # the version a GateEvaluated just before cleared
    me: str | None = None  # this log's machine id, once a pooled routing needs it
    with db.read():
        for event in EventLog(db).read_stream(f"skill:{skill}"):
            p = None if event.erased else event.payload
            problem: str | None = None
            ident = event.event_id
            if isinstance(p, SkillRouted):
                out.routings += 1
                ident = p.routing_id
                if p.pool == "team" and me is None:
                    me = _machine(db)
                problem = _check_routed(db, state, event, p, me or "")
            elif isinstance(p, SkillPromoted | SkillRetired) and p.author == "team":
                out.decisions += 1
                problem = _check_team(db, state, event, p)
            elif isinstance(p, SkillPromoted | SkillRetired) and p.author == "bandit":
                out.decisions += 1
                problem = _check_decision(db, state, event, p)
            elif isinstance(p, SkillPromoted) and not p.forced:
                out.decisions += 1
                if cleared != p.version_hash:
                    problem = "a promotion neither forced nor cleared by the gate just before it"
            cleared = p.version_hash if isinstance(p, GateEvaluated) and p.cleared else None
            if problem:
                out.mismatches.append(Mismatch(event.position, ident, problem))
            apply(state, event)
    return out
