"""The eval gate for one version of a skill, as ``promote`` and a bandit promotion ask it.

Everything the gate needs is gathered here once: the suite of record (never a file a newer
session happened to load from), the version's runs, the sessions it may count (only those of
the running test when the version is in one), and the gate policy in force.
"""

from __future__ import annotations

from pathlib import Path

import apsw

from ..evals.discovery import NoSuite, suite_path
from ..evals.gate import GateDecision, decide, population
from ..evals.manifest import Manifest, ManifestError, load_manifest
from ..events import Database
from ..events.types import GateEvaluated
from ..projections.replay_runs import replay_eval_runs
from ..projections.skill_folders import MANAGED, scope_text, skill_folders
from ..projections.skill_views import eval_runs, skill_sessions
from .policy import gate_policy
from .state import SkillState, window_start
from .store import read_state


class Gated(Exception):
    """No suite to gate with (missing, malformed, or not the suite of record); ``absent``:
    the skill has no suite at all."""

    def __init__(self, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


def gate_manifest(db: Database, skill: str, skill_dir: Path | None) -> Manifest:
    """The suite of record, loaded; :class:`Gated` with a one-line reason when there is none."""
    with db.read() as conn:
        try:
            path = suite_path(conn, skill, skill_dir, gate=True)
        except NoSuite as exc:
            raise Gated(str(exc), absent=exc.absent) from exc
    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise Gated(str(exc)) from exc


def window_of(state: SkillState, digest: str) -> str | None:
    """The running test's start when ``digest`` is one of its arms, else None."""
    exp = state.experiments.get(state.experiment or "")
    if exp is None or digest not in (exp.champion, exp.challenger):
        return None
    return window_start(exp)


def _apart(
    conn: apsw.Connection, skill: str, digest: str, tag: str, state: SkillState, need: int
) -> GateDecision | None:
    """A refusal when ``skill`` names several projects' skills and ``digest`` is a body one
    of them loaded rather than a version the store recorded or the managed skill's files held:
    promoting it would crown another project's skill (skill_folders)."""
    folders = skill_folders(conn, skill)
    if not folders.shared or MANAGED in folders.of(digest):
        return None
    known = state.versions.get(digest)
    if known is not None and known.source != "observed":
        return None
    where = ", ".join(scope_text(s) for s in folders.of(digest)) or "a folder not recorded"
    return GateDecision(
        cleared=False,
        reason=(
            f"{tag} was loaded from {where}, and {skill} names {len(folders.scopes)} different"
            f" skills ({', '.join(scope_text(s) for s in folders.scopes)}): the gate does not"
            " weigh one project's skill as a version of another's"
        ),
        run=None,
        sessions_graded=[],
        min_sessions=need,
    )


def evaluate(
    db: Database, skill: str, digest: str, tag: str, manifest: Manifest, author: str
) -> tuple[GateDecision, GateEvaluated]:
    """The gate's decision for version ``digest`` and the event that records it."""
    need = gate_policy(db).min_sessions
    state = read_state(db, skill)
    window = window_of(state, digest)
    with db.read() as conn:
        apart = _apart(conn, skill, digest, tag, state, need)
        decision = apart or decide(
            eval_runs(conn, skill, digest),
            tag=tag,
            suite_hash=manifest.suite_hash,
            suites=manifest.suite_names,
            min_sessions=need,
            command=f"skillopsctl eval run {skill}",
            sessions=population(db, conn, skill, digest, manifest, window),
            suite_path=manifest.path,
            captured=sum(
                1 for s in skill_sessions(conn, skill, since=window) if s.version_hash == digest
            ),
            replays=replay_eval_runs(conn, skill),
            run_cases=frozenset(
                (s.name, c.name) for s in manifest.suites for c in s.cases if c.run is not None
            ),
            plain_cases=sum(1 for s in manifest.suites for c in s.cases if c.run is None),
        )
    run = decision.run if apart is None else None
    return decision, GateEvaluated(
        skill=skill,
        version_hash=digest,
        cleared=decision.cleared,
        run_id=run.run_id if run else None,
        reason=decision.reason,
        suite_hash=manifest.suite_hash,
        min_sessions=decision.min_sessions,
        sessions_graded=decision.sessions_graded,
        run_passed=run.passed if run else None,
        author=author,
    )
