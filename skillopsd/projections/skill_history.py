"""A skill's history as recorded: versions, registered suites, eval runs, gate decisions and
promotions, each with the position and time it was recorded (for lineage and the gate), and
the policy changes every skill's lineage shows (the gate's, the bandit's and the verdict
rule's settings decide what a skill's evidence means)."""

from __future__ import annotations

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import (
    EvalRunCompleted,
    EvalSuiteRegistered,
    GateEvaluated,
    PolicySet,
    SkillChallengerStarted,
    SkillLiveRemoved,
    SkillManaged,
    SkillPromoted,
    SkillRetired,
    SkillRolledBack,
    SkillUnmanaged,
    SkillVersionCreated,
)
from ._engine import Projection
from .skill_folders import skill_folder

_json = msgspec.json.Encoder()
_SCHEMA = """
CREATE TABLE p_skill_versions (
    skill TEXT NOT NULL, version_hash TEXT NOT NULL, tag INTEGER NOT NULL, source TEXT NOT NULL,
    first_session TEXT, parent_hash TEXT, directory TEXT, position INTEGER NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (skill, version_hash)
);
CREATE TABLE p_eval_suites (
    skill TEXT NOT NULL, suite_hash TEXT NOT NULL, path TEXT NOT NULL,
    position INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (skill, suite_hash)
);
CREATE TABLE p_eval_runs (
    run_id TEXT PRIMARY KEY, skill TEXT NOT NULL, version_hash TEXT NOT NULL,
    suite_hash TEXT NOT NULL, deriver_version INTEGER NOT NULL, sessions TEXT NOT NULL,
    passed INTEGER NOT NULL, cases TEXT NOT NULL, suites TEXT NOT NULL,
    all_suites TEXT NOT NULL, baseline_run_id TEXT, position INTEGER NOT NULL,
    at TEXT NOT NULL, scope TEXT NOT NULL, suite_path TEXT NOT NULL
);
CREATE INDEX p_eval_runs_by_version ON p_eval_runs (skill, version_hash, position);
CREATE TABLE p_gate_decisions (
    position INTEGER PRIMARY KEY, skill TEXT NOT NULL, version_hash TEXT NOT NULL,
    cleared INTEGER NOT NULL, run_id TEXT, reason TEXT NOT NULL, forced INTEGER NOT NULL,
    min_sessions INTEGER, sessions_graded TEXT NOT NULL, author TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE p_promotions (
    position INTEGER PRIMARY KEY, skill TEXT NOT NULL, version_hash TEXT NOT NULL,
    previous_hash TEXT, reason TEXT NOT NULL, forced INTEGER NOT NULL, gate_run_id TEXT,
    author TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE p_version_changes (
    position INTEGER PRIMARY KEY, skill TEXT NOT NULL, kind TEXT NOT NULL,
    version_hash TEXT NOT NULL, previous_hash TEXT, reason TEXT NOT NULL,
    decision TEXT NOT NULL, author TEXT NOT NULL, at TEXT NOT NULL
);
CREATE INDEX p_version_changes_by_skill ON p_version_changes (skill, position);
CREATE TABLE p_policy_changes (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL, "values" TEXT NOT NULL,
    author TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE p_managed_skills (
    skill TEXT PRIMARY KEY, imported_from TEXT NOT NULL, position INTEGER NOT NULL
);
CREATE TABLE p_managed_folders (
    skill TEXT NOT NULL, folder TEXT NOT NULL, PRIMARY KEY (skill, folder)
) WITHOUT ROWID;
"""


class SkillHistory(Projection):
    """The tables ``skills``, ``skill show``, ``eval run``, ``promote`` and ``lineage`` read."""

    name = "skill_history"
    # 3: managed skills and policy changes; 4: unmanaged skills and removed live paths;
    # 5: every folder a managed skill was imported from or written to (skill_folders).
    version = 5
    tables = (
        "p_managed_skills",
        "p_managed_folders",
        "p_policy_changes",
        "p_skill_versions",
        "p_eval_suites",
        "p_eval_runs",
        "p_gate_decisions",
        "p_promotions",
        "p_version_changes",
    )
    handles = frozenset(
        {
            "SkillVersionCreated",
            "EvalSuiteRegistered",
            "EvalRunCompleted",
            "GateEvaluated",
            "SkillPromoted",
            "SkillManaged",
            "SkillUnmanaged",
            "SkillLiveRemoved",
            "SkillChallengerStarted",
            "SkillRetired",
            "SkillRolledBack",
            "PolicySet",
        }
    )

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        p = event.payload
        at = event.recorded_at
        pos = event.position
        if isinstance(p, SkillVersionCreated):
            conn.execute(
                "INSERT OR IGNORE INTO p_skill_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.skill,
                    p.version_hash,
                    p.tag,
                    p.source,
                    p.first_session,
                    p.parent_hash,
                    p.directory,
                    pos,
                    at,
                ),
            )
        elif isinstance(p, EvalSuiteRegistered):
            conn.execute(
                "INSERT OR IGNORE INTO p_eval_suites VALUES (?, ?, ?, ?, ?)",
                (p.skill, p.suite_hash, p.path, pos, at),
            )
        elif isinstance(p, EvalRunCompleted):
            conn.execute(
                "INSERT OR IGNORE INTO p_eval_runs"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.run_id,
                    p.skill,
                    p.version_hash,
                    p.suite_hash,
                    p.deriver_version,
                    _json.encode(p.sessions).decode(),
                    int(p.passed),
                    _json.encode(p.cases).decode(),
                    _json.encode(p.suites).decode(),
                    _json.encode(p.all_suites).decode(),
                    p.baseline_run_id,
                    pos,
                    at,
                    p.scope,
                    p.suite_path,
                ),
            )
        elif isinstance(p, GateEvaluated):
            conn.execute(
                "INSERT INTO p_gate_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pos,
                    p.skill,
                    p.version_hash,
                    int(p.cleared),
                    p.run_id,
                    p.reason,
                    int(p.forced),
                    p.min_sessions,
                    _json.encode(p.sessions_graded).decode(),
                    p.author,
                    at,
                ),
            )
        elif isinstance(p, SkillPromoted):
            conn.execute(
                "INSERT INTO p_promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pos,
                    p.skill,
                    p.version_hash,
                    p.previous_hash,
                    p.reason,
                    int(p.forced),
                    p.gate_run_id,
                    p.author,
                    at,
                ),
            )
        elif isinstance(p, PolicySet):
            conn.execute(
                "INSERT INTO p_policy_changes VALUES (?, ?, ?, ?, ?)",
                (pos, p.name, _json.encode(p.values).decode(), p.author, at),
            )
        elif isinstance(
            p,
            SkillManaged
            | SkillUnmanaged
            | SkillLiveRemoved
            | SkillChallengerStarted
            | SkillRetired
            | SkillRolledBack,
        ):
            self._change(conn, event)

    def _change(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        """Managing, a test's start, a retirement, a rollback: lineage entries and champions."""
        p = event.payload
        row: tuple[str, str, str | None, str, str, str]
        if isinstance(p, SkillManaged):
            if p.imported_from:
                conn.execute(
                    "INSERT OR IGNORE INTO p_managed_skills VALUES (?, ?, ?)",
                    (p.skill, p.imported_from, event.position),
                )
            for path in [p.imported_from, *p.live_paths]:
                if path:
                    conn.execute(
                        "INSERT OR IGNORE INTO p_managed_folders VALUES (?, ?)",
                        (p.skill, skill_folder(path)),
                    )
            row = ("managed", p.champion_hash, None, ", ".join(p.live_paths), "", p.author)
        elif isinstance(p, SkillUnmanaged):
            row = ("unmanaged", "", None, p.reason, "", p.author)
        elif isinstance(p, SkillLiveRemoved):
            row = ("live_removed", "", None, ", ".join(p.live_paths), "", p.author)
        elif isinstance(p, SkillChallengerStarted):
            row = ("challenger", p.version_hash, p.champion_hash, f"experiment {p.test_id}", "", "")
        elif isinstance(p, SkillRetired):
            row = ("retirement", p.version_hash, None, p.reason, p.decision, p.author)
        else:
            assert isinstance(p, SkillRolledBack)
            row = ("rollback", p.to_hash, p.from_hash, p.reason, "", p.author)
        conn.execute(
            "INSERT INTO p_version_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.position, p.skill, *row, event.recorded_at),  # type: ignore[attr-defined]
        )
