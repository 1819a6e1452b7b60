"""What one session's trace holds: the session, its spans, and the human and eval verdicts on it.

Spans come from the sessions projection (as ``session show`` reads them). Annotations and eval
results are read from the log itself: they are events, and no projection of them is needed
for the few a session has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apsw
import msgspec

from .._logging import get_logger
from ..derive import call_results
from ..deriving import SessionDeriver, SessionKey
from ..events import Database, EventLog, LogError
from ..events.types import AnnotationAdded, AnnotationRetracted, EvalRunCompleted
from ..projections.session_views import SessionView, SpanView, spans_of
from ..projections.verdict import POLICY_NAME

_HUMAN_AND_EVALS = ("AnnotationAdded", "AnnotationRetracted", "EvalRunCompleted")
_log = get_logger(__name__)


class Annotation(msgspec.Struct, frozen=True):
    """A human label on the session (retracted ones are left out)."""

    annotation_id: str
    label: str
    note: str
    author: str
    skill: str | None
    span_id: str | None
    recorded_at: str
    position: int


class EvalResult(msgspec.Struct, frozen=True):
    """One eval run's verdict on this session: passed when every grader passed for it."""

    run_id: str
    skill: str
    version_hash: str
    suite_hash: str
    passed: bool
    run_passed: bool
    graders: int
    failed: list[str]
    recorded_at: str
    position: int


class SessionTrace(msgspec.Struct):
    """Everything exported for one session; ``position`` is what the checkpoint records."""

    session: SessionView
    spans: list[SpanView]
    annotations: list[Annotation]
    evals: list[EvalResult]
    position: int
    # Withdrawn labels (label "retracted"): a receiver that keeps annotations is told.
    retracted: list[Annotation] = []
    # What each call returned, by call id (read from the captured lines; empty without content).
    results: dict[str, str] = {}


class HumanAndEvals(msgspec.Struct):
    """Annotations and eval results of every session, folded from the log in one pass."""

    annotations: dict[str, list[Annotation]]
    evals: dict[str, list[EvalResult]]

    def position(self, session_id: str) -> int:
        """The newest log position among this session's annotations and eval results."""
        found = [a.position for a in self.annotations.get(session_id, [])]
        found += [e.position for e in self.evals.get(session_id, [])]
        return max(found, default=0)


def read_human_and_evals(log: EventLog) -> HumanAndEvals:
    """Fold every annotation, retraction and eval run (call inside a read transaction)."""
    added: dict[str, Annotation] = {}
    sessions_of: dict[str, str] = {}
    retracted: dict[str, int] = {}
    evals: dict[str, list[EvalResult]] = {}
    for event in log.read(types=_HUMAN_AND_EVALS, include_erased=False):
        payload = event.payload
        if isinstance(payload, AnnotationAdded):
            added[payload.annotation_id] = Annotation(
                annotation_id=payload.annotation_id,
                label=payload.label,
                note=payload.note,
                author=payload.author,
                skill=payload.skill,
                span_id=payload.span_id,
                recorded_at=event.recorded_at,
                position=event.position,
            )
            sessions_of[payload.annotation_id] = payload.session_id
        elif isinstance(payload, AnnotationRetracted):
            retracted[payload.annotation_id] = event.position
        elif isinstance(payload, EvalRunCompleted):
            for session_id, result in _eval_results(payload, event.recorded_at, event.position):
                evals.setdefault(session_id, []).append(result)
    annotations: dict[str, list[Annotation]] = {}
    for annotation_id, annotation in added.items():
        if annotation_id in retracted:
            # The retraction changes what the session shows: it counts as a change to export.
            gone = Annotation(
                **{
                    **msgspec.structs.asdict(annotation),
                    "label": "retracted",
                    "position": retracted[annotation_id],
                }
            )
            annotations.setdefault(sessions_of[annotation_id], []).append(gone)
            continue
        annotations.setdefault(sessions_of[annotation_id], []).append(annotation)
    return HumanAndEvals(annotations=annotations, evals=evals)


def _eval_results(
    run: EvalRunCompleted, recorded_at: str, position: int
) -> Iterable[tuple[str, EvalResult]]:
    per_session: dict[str, list[tuple[str, bool]]] = {s: [] for s in run.sessions}
    for case in run.cases:
        for grader in case.results:
            name = f"{case.suite}/{case.case}/{grader.name or grader.type}"
            per_session.setdefault(grader.session_id, []).append((name, grader.passed))
    for session_id, graders in per_session.items():
        failed = [name for name, ok in graders if not ok]
        yield (
            session_id,
            EvalResult(
                run_id=run.run_id,
                skill=run.skill,
                version_hash=run.version_hash,
                suite_hash=run.suite_hash,
                passed=not failed,
                run_passed=run.passed,
                graders=len(graders),
                failed=failed,
                recorded_at=recorded_at,
                position=position,
            ),
        )


class CallResults:
    """What the calls of a session returned, read from its captured transcript lines.

    The derived spans do not keep a successful call's result (see
    :mod:`skillopsd.derive._results`); an export with content reads it back from the log.
    """

    def __init__(self, db: Database) -> None:
        self._deriver = SessionDeriver(db, workers=1)
        self._groups: dict[SessionKey, Any] | None = None

    def of(self, session: SessionView) -> dict[str, str]:
        """Call id -> result text (empty when its lines cannot be read: said on one line)."""
        if self._groups is None:
            self._groups = self._deriver.file_groups()
        key = SessionKey(session.agent, session.native_session_id)
        try:
            sources = self._deriver.sources_of(key, self._groups)
        except LogError as exc:
            _log.warning(
                "exported without tool results: its captured lines cannot be read",
                session=session.session_id,
                error=str(exc),
            )
            return {}
        return call_results(session.agent, sources)


def session_trace(
    conn: apsw.Connection,
    session: SessionView,
    position: int,
    extra: HumanAndEvals,
    results: dict[str, str] | None = None,
) -> SessionTrace:
    """One session's trace as of now (call inside a read transaction)."""
    sid = session.session_id
    every = extra.annotations.get(sid, [])
    return SessionTrace(
        session=session,
        spans=spans_of(conn, sid),
        annotations=[a for a in every if a.label != "retracted"],
        evals=extra.evals.get(sid, []),
        position=position,
        retracted=[a for a in every if a.label == "retracted"],
        results=results or {},
    )


class Change(msgspec.Struct, frozen=True):
    """The newest log position that changed what a session exports, and when it was recorded."""

    position: int
    recorded_at: str


def changes(conn: apsw.Connection, extra: HumanAndEvals) -> dict[str, Change]:
    """Every current session's newest change (call inside a read transaction).

    A change is anything in the session's derived stream (a rederive appends only what
    differs), an annotation or eval result on it, or a new verdict policy (it changes every
    verdict shown on the session's root span).
    """
    policy = conn.execute(
        "SELECT p.position, e.recorded_at FROM p_policies p JOIN events e USING (position)"
        " WHERE p.name = ?",
        (POLICY_NAME,),
    ).fetchone()
    floor = Change(policy[0], policy[1]) if policy is not None else Change(0, "")
    out: dict[str, Change] = {}
    # A range over the (stream, stream_version) index: no scan of the captured lines.
    newest: dict[str, int] = {
        str(sid): int(position)
        for sid, position in conn.execute(
            "SELECT substr(e.stream, 9), max(e.position) FROM events e"
            " WHERE e.stream >= 'session:' AND e.stream < 'session;' GROUP BY e.stream"
        )
    }
    for (sid,) in conn.execute("SELECT session_id FROM p_sessions"):
        best = max(newest.get(sid, 0), extra.position(sid))
        out[sid] = Change(best, "") if best > floor.position else floor
    wanted = [c.position for c in out.values() if not c.recorded_at]
    times = _recorded_at(conn, wanted)
    return {
        sid: c if c.recorded_at else Change(c.position, times.get(c.position, ""))
        for sid, c in out.items()
    }


def _recorded_at(conn: apsw.Connection, positions: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(positions), 500):
        chunk = positions[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for position, recorded_at in conn.execute(
            f"SELECT position, recorded_at FROM events WHERE position IN ({marks})", chunk
        ):
            out[int(position)] = str(recorded_at)
    return out
