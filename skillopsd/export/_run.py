"""One export pass: read session traces, encode them in batches, send, checkpoint on each ack."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from ..events import Database, EventLog
from ..projections.session_views import SessionView, list_sessions
from ._checkpoint import commit_exported, exported_positions, has_tables
from ._otlp import DEFAULT_BATCH_BYTES, DEFAULT_PROJECT, encode_batches, root_span_id, trace_id_of
from ._phoenix import PhoenixAPI, SpanAnnotation
from ._sender import Accepted, ExportError
from ._traces import CallResults, Change, SessionTrace, changes, read_human_and_evals, session_trace

# Rounds of sending again what Phoenix acknowledged but did not store, before giving up
# (what is still missing stays due for the next export).
_VERIFY_ROUNDS = 3


class Sink(Protocol):
    """Where request bodies go: a receiver (:class:`~._sender.Sender`) or a file."""

    def post(self, body: bytes) -> Accepted: ...


class ExportReport(msgspec.Struct):
    """What a pass sent, and (when it stopped early) why."""

    sessions: int = 0
    spans: int = 0
    batches: int = 0
    rejected: int = 0
    rejected_message: str = ""
    bytes: int = 0
    verified: int = 0  # sessions read back whole from Phoenix
    resent: int = 0  # sessions sent again because Phoenix had not stored all of them
    annotations: int = 0  # labels and eval results written as Phoenix span annotations


class ExportIncomplete(Exception):
    """A pass that stopped on an error after exporting ``report``; ``cause`` says why."""

    def __init__(self, report: ExportReport, cause: ExportError) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause


class Due(msgspec.Struct):
    """A session to export, the change its export will reflect, and the position its last
    export to this target reflected (0: never exported there)."""

    session: SessionView
    change: Change
    previous: int = 0


def settled(
    due: Sequence[Due], now: float, settle: float
) -> tuple[list[Due], list[Due], float | None]:
    """(ready, waiting, seconds until the next waiting one settles).

    A session is settled when its last change was recorded ``settle`` seconds ago, or its
    transcript's last activity is that old (a backfill of old sessions exports at once).
    Exporting only settled sessions is what keeps a receiver that keeps the first copy of a
    span from showing a session as it was halfway through.
    """
    ready: list[Due] = []
    waiting: list[Due] = []
    soonest: float | None = None
    for item in due:
        waited = max(_age(item.change.recorded_at, now), _age(item.session.ended_at, now))
        if waited >= settle:
            ready.append(item)
        else:
            waiting.append(item)
            left = settle - waited
            soonest = left if soonest is None else min(soonest, left)
    return ready, waiting, soonest


def _age(stamp: str | None, now: float) -> float:
    if not stamp:
        return 0.0
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        return 0.0
    return now - moment.timestamp()


def current_changes(db: Database) -> dict[str, Change]:
    """Every session's newest change (see :func:`~._traces.changes`)."""
    with db.read() as conn:
        extra = read_human_and_evals(EventLog(db))
        return changes(conn, extra)


def due_sessions(
    db: Database,
    target: str | None,
    sessions: Sequence[SessionView] | None = None,
    *,
    changed_only: bool = True,
) -> list[Due]:
    """``sessions`` (default: all, oldest first) whose change ``target`` has not received
    (every one of them without ``changed_only``, or with ``target`` None: a file)."""
    with db.read() as conn:
        if not has_tables(conn, "p_sessions"):
            return []  # nothing projected yet (a new database)
    found = current_changes(db)
    with db.read() as conn:
        if sessions is None:
            sessions = list(reversed(list_sessions(conn)))
        done = exported_positions(conn, target) if target and has_tables(conn) else {}
    out = []
    for session in sessions:
        change = found.get(session.session_id)
        if change is None:
            continue
        previous = done.get(session.session_id, 0)
        if changed_only and target is not None and change.position <= previous:
            continue
        out.append(Due(session, change, previous))
    return out


def span_annotations(trace: SessionTrace, content: bool = True) -> list[SpanAnnotation]:
    """A session's labels and eval results as Phoenix span annotations (on the span a label
    names, else the session's root span); a retracted label stays, marked retracted."""
    root = root_span_id(trace.session.session_id)
    ids = {sp.span_id for sp in trace.spans}
    out = []
    for a in [*trace.annotations, *trace.retracted]:
        out.append(
            SpanAnnotation(
                span_id=a.span_id if a.span_id in ids else root,
                name=f"label {a.skill}" if a.skill else "label",
                annotator_kind="HUMAN",
                label=a.label,
                score=None,
                explanation=(a.note or None) if content else None,
                identifier=a.annotation_id,
                metadata={"author": a.author, "recorded_at": a.recorded_at, "source": "skillops"},
            )
        )
    for e in trace.evals:
        out.append(
            SpanAnnotation(
                span_id=root,
                name=f"eval {e.skill}",
                annotator_kind="CODE",
                label="passed" if e.passed else "failed",
                score=1.0 if e.passed else 0.0,
                explanation="; ".join(e.failed) or None,
                identifier=e.run_id,
                metadata={
                    "version_hash": e.version_hash,
                    "suite_hash": e.suite_hash,
                    "graders": e.graders,
                    "run_passed": e.run_passed,
                    "recorded_at": e.recorded_at,
                },
            )
        )
    return out


def export_sessions(
    db: Database,
    sink: Sink,
    due: Iterable[Due],
    *,
    target: str | None,
    max_bytes: int = DEFAULT_BATCH_BYTES,
    project: str = DEFAULT_PROJECT,
    should_stop: Callable[[], bool] = lambda: False,
    phoenix: PhoenixAPI | None = None,
    content: bool = True,
) -> ExportReport:
    """Send ``due`` sessions; after each acknowledged batch, checkpoint what it completed.

    With ``phoenix``, a session counts as exported only once Phoenix's API returns every one
    of its spans (what is missing is sent again, a few rounds), and its labels and eval
    results are written there as span annotations. Raises :class:`ExportIncomplete`
    (carrying what was done) when the sink fails or Phoenix keeps missing spans.
    """
    report = ExportReport()
    remaining = list(due)
    again: dict[str, int] = {}
    for round_ in range(_VERIFY_ROUNDS):
        again = _send(
            db,
            sink,
            remaining,
            target,
            max_bytes,
            project,
            should_stop,
            phoenix,
            report,
            again,
            content,
        )
        if not again:
            return report
        remaining = [d for d in remaining if d.session.session_id in again]
        if round_ + 1 < _VERIFY_ROUNDS:
            report.resent += len(remaining)
    spans = sum(again.values())
    raise ExportIncomplete(
        report,
        ExportError(
            f"{sink_name(sink)}: Phoenix acknowledged but did not store {spans} spans of"
            f" {len(again)} sessions after {_VERIFY_ROUNDS} sends; they stay due"
        ),
    )


def sink_name(sink: Sink) -> str:
    return str(getattr(sink, "url", "the receiver"))


def _send(
    db: Database,
    sink: Sink,
    due: list[Due],
    target: str | None,
    max_bytes: int,
    project: str,
    should_stop: Callable[[], bool],
    phoenix: PhoenixAPI | None,
    report: ExportReport,
    resend: dict[str, int],
    content: bool,
) -> dict[str, int]:
    """One pass over ``due``; returns the sessions Phoenix did not store whole (id -> spans
    missing)."""
    spans_of: dict[str, int] = {}
    expected: dict[str, tuple[str, set[str]]] = {}
    annotations: dict[str, list[SpanAnnotation]] = {}
    missing: dict[str, int] = {}

    def traces() -> Iterator[SessionTrace]:
        extra = None
        calls = CallResults(db) if content else None
        for item in due:
            if should_stop():
                return
            results = calls.of(item.session) if calls is not None else None
            with db.read() as conn:
                if extra is None:
                    extra = read_human_and_evals(EventLog(db))
                trace = session_trace(conn, item.session, item.change.position, extra, results)
            sid = item.session.session_id
            spans_of[sid] = len(trace.spans) + 1
            if phoenix is not None:
                ids = {root_span_id(sid), *(sp.span_id for sp in trace.spans)}
                expected[sid] = (trace_id_of(trace), ids)
                annotations[sid] = span_annotations(trace, content)
                if item.previous and sid not in resend:
                    # Phoenix keeps the first copy of a span: the old trace goes first.
                    try:
                        phoenix.delete_trace(trace_id_of(trace))
                    except ExportError as exc:
                        raise ExportIncomplete(report, exc) from exc
            yield trace

    for batch in encode_batches(traces(), max_bytes=max_bytes, project=project, content=content):
        try:
            accepted = sink.post(batch.body)
        except ExportError as exc:
            raise ExportIncomplete(report, exc) from exc
        report.batches += 1
        report.spans += batch.spans
        report.bytes += len(batch.body)
        if accepted.rejected:
            report.rejected += accepted.rejected
            report.rejected_message = accepted.message
        done = batch.done
        if phoenix is not None and done:
            try:
                lost = phoenix.missing({sid: expected[sid] for sid, _ in done})
                stored = [sid for sid, _ in done if sid not in lost]
                notes = [a for sid in stored for a in annotations.get(sid, [])]
                if notes:
                    phoenix.annotate(notes)
            except ExportError as exc:
                raise ExportIncomplete(report, exc) from exc
            missing.update(lost)
            report.verified += len(stored)
            report.annotations += len(notes)
            done = [(sid, pos) for sid, pos in done if sid not in lost]
        report.sessions += len(done)
        if target is not None and done:
            commit_exported(db, target, [(sid, pos, spans_of.get(sid, 0)) for sid, pos in done])
    return missing
