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

import msgspec

from .._defaults import DEFAULT_SETTLE_SECONDS
from ..derive._skills import skill_content_hash
from ..events import Database, EventLog, NewEvent, RecordedEvent, content_id
from ..events.types import (
    GateEvaluated,
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
    files_written: list[str] = []


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
    _rejections(db, skill)
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


def verify_routing(db: Database, skill: str) -> Verified:
    """Recompute every ``SkillRouted`` and every bandit promotion or retirement of ``skill``
    from the state before it and the policy in force at its position; a champion change by
    a person must have passed the gate just before it, or be forced."""
    state = SkillState(skill=skill)
    out = Verified()
    cleared: str | None = None  # the version a GateEvaluated just before cleared
    with db.read():
        for event in EventLog(db).read_stream(f"skill:{skill}"):
            p = None if event.erased else event.payload
            problem: str | None = None
            ident = event.event_id
            if isinstance(p, SkillRouted):
                out.routings += 1
                ident = p.routing_id
                policy = bandit_policy(db, upto=event.position)
                cap = p.params.get("challenger_cap")
                if p.routing_id != route_id(skill, state.state_version) or p.seed != seed_of(
                    p.routing_id
                ):
                    problem = "id or seed does not follow from the state it routed"
                elif state.challenger is not None and cap != policy.challenger_cap:
                    problem = (
                        f"challenger_cap {cap} recorded, the policy in force says"
                        f" {policy.challenger_cap}"
                    )
                elif state.challenger is not None and p.algorithm != state.strategy:
                    problem = f"routed with {p.algorithm}, the skill's strategy is {state.strategy}"
                else:
                    problem = verify_routed(state, p)
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
