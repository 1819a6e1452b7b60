"""The runs of ``eval replay``, and which eval run graded each replay (for lineage, ``skill
show`` and the replay table)."""

from __future__ import annotations

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import EvalRunCompleted, ReplayRunCompleted
from ._engine import Projection
from ._stats import Share, wilson

_SCHEMA = """
CREATE TABLE p_replay_runs (
    run_id TEXT PRIMARY KEY, replay_id TEXT NOT NULL, skill TEXT NOT NULL,
    version_hash TEXT NOT NULL, suite TEXT NOT NULL, case_name TEXT NOT NULL,
    repeat INTEGER NOT NULL, agent TEXT NOT NULL, status TEXT NOT NULL, exit_status INTEGER,
    wall_ms INTEGER NOT NULL, session_id TEXT, error TEXT NOT NULL,
    position INTEGER NOT NULL, at TEXT NOT NULL
);
CREATE INDEX p_replay_runs_by_skill ON p_replay_runs (skill, position);
CREATE TABLE p_replay_grades (
    replay_id TEXT NOT NULL, version_hash TEXT NOT NULL, eval_run_id TEXT NOT NULL,
    skill TEXT NOT NULL, passed INTEGER NOT NULL, cases TEXT NOT NULL,
    position INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (replay_id, version_hash)
);
"""
_json = msgspec.json.Encoder()


class ReplayRuns(Projection):
    name = "replay_runs"
    tables = ("p_replay_runs", "p_replay_grades")
    handles = frozenset({"ReplayRunCompleted", "EvalRunCompleted"})

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        p = event.payload
        if isinstance(p, ReplayRunCompleted):
            conn.execute(
                "INSERT OR IGNORE INTO p_replay_runs VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.run_id,
                    p.replay_id,
                    p.skill,
                    p.version_hash,
                    p.suite,
                    p.case,
                    p.repeat,
                    p.agent,
                    p.status,
                    p.exit_status,
                    p.wall_ms,
                    p.session_id,
                    p.error,
                    event.position,
                    event.recorded_at,
                ),
            )
        elif isinstance(p, EvalRunCompleted) and p.replay_id:
            conn.execute(
                "INSERT OR IGNORE INTO p_replay_grades VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.replay_id,
                    p.version_hash,
                    p.run_id,
                    p.skill,
                    int(p.passed),
                    _json.encode([[c.case, c.passed_sessions, c.graded] for c in p.cases]).decode(),
                    event.position,
                    event.recorded_at,
                ),
            )


class ReplaySummary(msgspec.Struct):
    """One version in one replay: runs by how they ended, and the graded pass share."""

    replay_id: str
    version_hash: str
    runs: int
    statuses: dict[str, int]
    passed: Share | None
    eval_run_id: str | None
    eval_passed: bool | None
    position: int
    at: str


def replay_summaries(conn: apsw.Connection, skill: str) -> list[ReplaySummary]:
    """Every (replay, version) of ``skill``, newest first."""
    grades = {
        (r, v): (run_id, bool(passed), cases)
        for r, v, run_id, passed, cases in conn.execute(
            "SELECT replay_id, version_hash, eval_run_id, passed, cases FROM p_replay_grades"
            " WHERE skill = ?",
            (skill,),
        )
    }
    out: dict[tuple[str, str], ReplaySummary] = {}
    for replay_id, vh, status, pos, at in conn.execute(
        "SELECT replay_id, version_hash, status, position, at FROM p_replay_runs"
        " WHERE skill = ? ORDER BY position",
        (skill,),
    ):
        s = out.get((replay_id, vh))
        if s is None:
            s = out[(replay_id, vh)] = ReplaySummary(
                replay_id, vh, 0, {}, None, None, None, pos, at
            )
        s.runs += 1
        s.statuses[status] = s.statuses.get(status, 0) + 1
        s.position, s.at = pos, at
    for key, s in out.items():
        grade = grades.get(key)
        if grade is not None:
            s.eval_run_id, s.eval_passed = grade[0], grade[1]
            cases = msgspec.json.decode(grade[2])
            s.passed = wilson(sum(c[1] for c in cases), s.runs)
    return sorted(out.values(), key=lambda s: -s.position)


def replay_cases(conn: apsw.Connection, skill: str, session_ids: list[str]) -> dict[str, str]:
    """Session -> the case whose ``run`` task it replayed, for sessions ``eval replay`` made."""
    out: dict[str, str] = {}
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for sid, case in conn.execute(
            f"SELECT session_id, case_name FROM p_replay_runs WHERE skill = ?"
            f" AND session_id IN ({marks})",
            (skill, *chunk),
        ):
            out[sid] = case
    return out


def replay_eval_runs(conn: apsw.Connection, skill: str) -> frozenset[str]:
    """The eval runs of ``skill`` that graded an ``eval replay`` (one per replay and version)."""
    return frozenset(
        r[0]
        for r in conn.execute("SELECT eval_run_id FROM p_replay_grades WHERE skill = ?", (skill,))
    )
