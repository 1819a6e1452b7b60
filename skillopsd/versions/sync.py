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

from datetime import datetime
from pathlib import Path

import msgspec

from .._defaults import DEFAULT_SETTLE_SECONDS
from ..derive._skills import skill_content_hash
from ..evals.discovery import find_manifest, recorded_directories
from ..evals.gate import GATE_POLICY, GatePolicy
from ..evals.gate import decide as gate_decide
from ..evals.manifest import ManifestError, load_manifest
from ..events import Database, EventLog, NewEvent, content_id
from ..events.types import (
    GateEvaluated,
    PolicySet,
    SkillExecutionRecorded,
    SkillPromoted,
    SkillRetired,
    SkillRouted,
)
from ..projections.skill_views import eval_runs
from ._atomic import write_atomic
from ._bandit import decide_state, route_state, verify_routed
from .executions import Signal, settled, signals
from .materialize import materialize, next_pick, store_root
from .policy import bandit_policy
from .state import SkillState, apply
from .store import append_checked, managed_state, new, promote_edit, read_state


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did."""

    skill: str
    executions: int = 0
    corrections: int = 0
    waiting: int = 0  # sessions that loaded the skill and have not settled yet
    decisions: list[str] = []
    edits: list[str] = []
    routed: str | None = None
    live_written: list[str] = []
    files_written: list[str] = []


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _edits(db: Database, state: SkillState, report: SyncReport) -> None:
    for live in state.live_paths:
        text = _read(Path(live))
        if text is None or not text.strip():
            continue
        if skill_content_hash(text) not in state.versions:
            digest = promote_edit(db, state.skill, Path(live), text)
            if digest is not None:
                report.edits.append(live)


def _execution_event(
    state: SkillState, sig: Signal, supersedes: str | None
) -> tuple[NewEvent, str]:
    event = SkillExecutionRecorded(
        skill=state.skill,
        version_hash=sig.version_hash,
        session_id=sig.session_id,
        outcome=sig.outcome,  # type: ignore[arg-type]
        tokens=sig.tokens,
        duration_ms=sig.duration_ms,
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


def _executions(db: Database, skill: str, now: datetime, settle: float, report: SyncReport) -> None:
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
        _decide(db, skill, report)
        done = {e.session_id for e in after.executions.values()}
        due = [s for s in due if s.session_id not in done or _changed(after, s)[0]]


def gate_policy(db: Database) -> GatePolicy:
    """The newest ``PolicySet gate`` (defaults when none was set or it does not read)."""
    newest: PolicySet | None = None
    with db.read():
        for event in EventLog(db).read_stream(f"policy:{GATE_POLICY}"):
            payload = event.payload
            if isinstance(payload, PolicySet) and payload.name == GATE_POLICY:
                newest = payload
    if newest is None:
        return GatePolicy()
    try:
        return msgspec.convert(newest.values, GatePolicy)
    except msgspec.ValidationError:
        return GatePolicy()


def _gate(db: Database, state: SkillState, digest: str) -> GateEvaluated | None:
    """The eval gate for a bandit promotion; None when the skill has no evals.yaml."""
    tag = state.tag_of(digest) or digest[:12]
    with db.read() as conn:
        path, _looked = find_manifest(recorded_directories(conn, state.skill), None)
        if path is None:
            return None
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            return GateEvaluated(
                skill=state.skill,
                version_hash=digest,
                cleared=False,
                reason=f"evals.yaml does not load: {exc}",
                author="bandit",
            )
        decision = gate_decide(
            eval_runs(conn, state.skill, digest),
            tag=tag,
            suite_hash=manifest.suite_hash,
            suites=manifest.suite_names,
            min_sessions=gate_policy(db).min_sessions,
            command=f"skillopsctl eval run {state.skill}",
        )
    run = decision.run
    return GateEvaluated(
        skill=state.skill,
        version_hash=digest,
        cleared=decision.cleared,
        run_id=run.run_id if run else None,
        reason=decision.reason,
        suite_hash=manifest.suite_hash,
        min_sessions=decision.min_sessions,
        sessions_graded=decision.sessions_graded,
        run_passed=run.passed if run else None,
        author="bandit",
    )


def _decide(db: Database, skill: str, report: SyncReport) -> None:
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
                # Recorded once per distinct refusal; the test goes on.
                refused = content_id("bandit-gate", skill, exp, gate.run_id or "", gate.reason)
                said.append(f"promotion of {state.tag_of(state.challenger)} refused by the gate")
                return [new(skill, gate, refused)]
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


def route_id(skill: str, state_version: int) -> str:
    """A routing's id: fixed by the state it follows, so racing routers agree on one event."""
    return content_id("SkillRouted", skill, state_version)


def seed_of(routing_id: str) -> int:
    """The seed a routing draws with, derived from its recorded id (never the clock)."""
    return int(routing_id[:15], 16)


def _route(db: Database, skill: str, report: SyncReport) -> SkillState:
    policy = bandit_policy(db)

    def build(state: SkillState) -> list[NewEvent]:
        if state.champion is None:
            return []
        if state.routing is not None and state.routing.after_version >= state.state_version:
            return []  # nothing changed since: replay uses the recorded decision
        rid = route_id(skill, state.state_version)
        return [new(skill, route_state(state, rid, seed_of(rid), policy), rid)]

    append_checked(db, skill, build)
    state = read_state(db, skill)
    report.routed = state.tag_of(next_pick(state))
    return state


def _write_live(state: SkillState, report: SyncReport) -> None:
    chosen = next_pick(state)
    if chosen is None:
        return
    body = state.body_file(chosen).encode()
    for live in state.live_paths:
        path = Path(live)
        text = _read(path)
        if text is not None and text.strip():
            digest = skill_content_hash(text)
            if digest == chosen or digest not in state.versions:
                continue  # already routed, or a human edit the next sync imports
        write_atomic(path, body)
        report.live_written.append(live)


def sync_skill(
    db: Database,
    skill: str,
    *,
    now: datetime,
    settle: float = DEFAULT_SETTLE_SECONDS,
    executions: bool = True,
) -> SyncReport:
    """Bring ``skill`` up to date (steps in the module docstring); the daemon's and CLI's."""
    state = managed_state(db, skill)
    report = SyncReport(skill=skill)
    _edits(db, state, report)
    if executions:
        _executions(db, skill, now, settle, report)
    _decide(db, skill, report)
    state = _route(db, skill, report)
    _write_live(state, report)
    report.files_written = [str(p) for p in materialize(store_root(db.path), state)]
    return report


def materialize_only(db: Database, skill: str) -> list[Path]:
    """Rewrite the store folder from the log without appending anything."""
    return materialize(store_root(db.path), managed_state(db, skill))


class Mismatch(msgspec.Struct, frozen=True):
    """A recorded routing that the log does not reproduce."""

    position: int
    routing_id: str
    problem: str


def verify_routing(db: Database, skill: str) -> tuple[int, list[Mismatch]]:
    """Recompute every ``SkillRouted`` of ``skill`` from the state before it."""
    state = SkillState(skill=skill)
    checked = 0
    out = []
    with db.read():
        for event in EventLog(db).read_stream(f"skill:{skill}"):
            p = None if event.erased else event.payload
            if isinstance(p, SkillRouted):
                checked += 1
                if p.routing_id != route_id(skill, state.state_version) or p.seed != seed_of(
                    p.routing_id
                ):
                    problem: str | None = "id or seed does not follow from the state it routed"
                else:
                    problem = verify_routed(state, p)
                if problem:
                    out.append(Mismatch(event.position, p.routing_id, problem))
            apply(state, event)
    return checked, out
