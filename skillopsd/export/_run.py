"""One export pass: read session traces, encode them in batches, send, checkpoint on each ack."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import msgspec

from ..events import Database, EventLog
from ..projections.session_views import SessionView, list_sessions
from ._checkpoint import commit_exported, exported_positions, has_tables
from ._otlp import DEFAULT_BATCH_BYTES, DEFAULT_PROJECT, encode_batches
from ._sender import Accepted, ExportError
from ._traces import Change, SessionTrace, changes, read_human_and_evals, session_trace


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


class ExportIncomplete(Exception):
    """A pass that stopped on an error after exporting ``report``; ``cause`` says why."""

    def __init__(self, report: ExportReport, cause: ExportError) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause


class Due(msgspec.Struct):
    """A session to export and the change its export will reflect."""

    session: SessionView
    change: Change


def current_changes(db: Database) -> dict[str, Change]:
    """Every session's newest change (see :func:`~._traces.changes`)."""
    with db.read() as conn:
        extra = read_human_and_evals(EventLog(db))
        return changes(conn, extra)


def due_sessions(
    db: Database, target: str | None, sessions: Sequence[SessionView] | None = None
) -> list[Due]:
    """``sessions`` (default: all, oldest first) whose change ``target`` has not received.

    With ``target`` None (a file) every given session is due.
    """
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
        if change is not None and change.position > done.get(session.session_id, 0):
            out.append(Due(session, change))
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
) -> ExportReport:
    """Send ``due`` sessions; after each acknowledged batch, checkpoint what it completed.

    Raises :class:`ExportIncomplete` (carrying what was done) when the sink fails.
    """
    report = ExportReport()
    spans_of: dict[str, int] = {}

    def traces() -> Iterator[SessionTrace]:
        extra = None
        for item in due:
            if should_stop():
                return
            with db.read() as conn:
                if extra is None:
                    extra = read_human_and_evals(EventLog(db))
                trace = session_trace(conn, item.session, item.change.position, extra)
            spans_of[item.session.session_id] = len(trace.spans) + 1
            yield trace

    for batch in encode_batches(traces(), max_bytes=max_bytes, project=project):
        try:
            accepted = sink.post(batch.body)
        except ExportError as exc:
            raise ExportIncomplete(report, exc) from exc
        report.batches += 1
        report.spans += batch.spans
        report.bytes += len(batch.body)
        report.sessions += len(batch.done)
        if accepted.rejected:
            report.rejected += accepted.rejected
            report.rejected_message = accepted.message
        if target is not None and batch.done:
            commit_exported(
                db, target, [(sid, pos, spans_of.get(sid, 0)) for sid, pos in batch.done]
            )
    return report
