"""Executions from captured sessions: which sessions of a managed skill have settled, and
what their outcome is.

The outcome of one session, in order of trust: the newest full eval run of the skill's suite
of record that graded it (a case matched it: success iff every grader of every case passed
on it; subsets and other files never count), else the newest human
label for it (``good`` success; ``bad`` and ``blocked`` failure; ``neutral`` says nothing),
else the session verdict (``success``; ``failure``; ``abandoned`` counts as a failure: the
user stopped the agent mid-work or rejected its last action, which is what a skill exists
to avoid, and leaving it out would hide a version that makes people give up). Anything else
is unknown: not recorded, never counted.

A copy of another session (the same responses: a resumed or forked Claude Code session, a
transcript copied; projections.copies) has no outcome of its own: the session it is a copy
of is the conversation and is the execution. When a session recorded already turns out to be
a copy (its resumed continuation was captured since), its record is corrected to unknown
(source ``copy``), so the earlier part of one conversation is never counted twice.
"""

from __future__ import annotations

import json
from datetime import datetime

import apsw
import msgspec

from ..evals.discovery import same_file, suite_of_record
from ..events import Database, EventLog
from ..events.types import TranscriptLineCaptured
from ..projections.skill_views import eval_runs, skill_sessions
from ..projections.verdict import COUNTED
from .state import instant

_LABELS = {"good": "success", "bad": "failure", "blocked": "failure"}


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A settled session's outcome for the version it loaded."""

    session_id: str
    version_hash: str
    outcome: str | None
    source: str  # eval | label | verdict | "" (unknown)
    signal: str
    tokens: int | None
    duration_ms: int | None
    started_at: str | None
    cost_usd: float | None = None


def _eval_results(conn: apsw.Connection, skill: str) -> dict[str, tuple[bool, str]]:
    """Per session, (passed, run id) of the newest eval run that graded it.

    Only full runs (every session, every suite) of the skill's suite of record speak for a
    session: a hand-picked subset, or a throwaway run of another file with ``--skill-dir``,
    must not rewrite what a test counts.
    """
    record = suite_of_record(conn, skill)
    out: dict[str, tuple[bool, str]] = {}
    if record is None:
        return out
    for run in eval_runs(conn, skill):  # newest first
        if not run.full or not same_file(run.suite_path, record):
            continue
        verdicts: dict[str, bool] = {}
        for case in run.cases:
            for result in case.results:
                verdicts[result.session_id] = verdicts.get(result.session_id, True) and (
                    result.passed
                )
        for sid, passed in verdicts.items():
            out.setdefault(sid, (passed, run.run_id))
    return out


def signals(conn: apsw.Connection, skill: str) -> list[Signal]:
    """The outcome of every session that loaded a recorded body of ``skill``."""
    evals = _eval_results(conn, skill)
    out = []
    for s in skill_sessions(conn, skill, copies=True):
        if s.version_hash is None:
            continue
        outcome, source, signal = None, "", ""
        if s.copy_of is not None:
            source, signal = "copy", s.copy_of
        elif s.session_id in evals:
            passed, run_id = evals[s.session_id]
            outcome, source, signal = ("success" if passed else "failure"), "eval", run_id
        elif s.label in _LABELS:
            outcome, source, signal = _LABELS[s.label], "label", s.label
        elif s.verdict in COUNTED:  # as every success rate counts it (skill show too)
            outcome, source, signal = COUNTED[s.verdict], "verdict", s.verdict
        out.append(
            Signal(
                session_id=s.session_id,
                version_hash=s.version_hash,
                outcome=outcome,
                source=source,
                signal=signal,
                tokens=s.tokens,
                duration_ms=s.duration_ms,
                started_at=s.started_at,
                cost_usd=s.cost_usd,
            )
        )
    return sorted(out, key=lambda x: (x.started_at or "", x.session_id))


def _ended(line: bytes) -> bool:
    """The agent's own end of a session: Claude's ``last-prompt``, Codex's ``task_complete``."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    if record.get("type") == "last-prompt":
        return True
    payload = record.get("payload")
    return (
        record.get("type") == "event_msg"
        and isinstance(payload, dict)
        and payload.get("type") == "task_complete"
    )


def _age(recorded_at: str, now: datetime) -> float:
    at = datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    return (now - at).total_seconds()


def settled(db: Database, session_ids: list[str], now: datetime, quiet: float) -> set[str]:
    """Sessions quiet for ``quiet`` seconds, or whose agent wrote its end.

    Quiet is counted from the transcript's own last timestamp when it has one, else from the
    capture of its newest line: a backfill captures months-old sessions just now, and they
    ended long ago (a live session's last timestamp and its capture are the same moment).
    """
    log = EventLog(db)
    out = set()
    with db.read() as conn:
        for sid in session_ids:
            found_row = conn.execute(
                "SELECT agent, native_session_id, ended_at FROM p_sessions WHERE session_id = ?",
                (sid,),
            ).fetchone()
            if found_row is None:
                continue
            row = found_row[:2]
            ended = instant(found_row[2])
            if ended is not None and (now - ended).total_seconds() >= quiet:
                out.add(sid)
                continue
            newest: tuple[int, str] | None = None
            for (source_id,) in conn.execute(
                "SELECT source_id FROM capture_sources WHERE agent = ? AND session = ?", row
            ):
                found = conn.execute(
                    "SELECT position, recorded_at FROM events WHERE stream = ?"
                    " AND type = 'TranscriptLineCaptured' ORDER BY stream_version DESC LIMIT 1",
                    (f"source:{source_id}",),
                ).fetchone()
                if found and (newest is None or found[0] > newest[0]):
                    newest = (found[0], found[1])
            if newest is None:
                continue
            if _age(newest[1], now) >= quiet:
                out.add(sid)
                continue
            for event in log.read(after=newest[0] - 1, upto=newest[0]):
                payload = event.payload if not event.erased else None
                if isinstance(payload, TranscriptLineCaptured) and _ended(payload.line):
                    out.add(sid)
    return out
