"""``skillopsctl export jsonl``: spans as JSON lines; ``export otlp``: traces to a receiver."""

from __future__ import annotations

import sys
from typing import IO

import click
import msgspec

from ..export import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_PROJECT,
    Accepted,
    ExportIncomplete,
    ReceiverRefused,
    Sender,
    due_sessions,
    export_sessions,
    otlp_json,
    parse_header,
)
from ..projections.session_views import SessionView, list_sessions, spans_of
from ._app import AppContext, UsageFailure, cli, db_option, pass_app
from ._lookup import lookup_session
from ._output import plain
from ._time import window_options


@cli.group()
def export() -> None:
    """Export derived data."""


@export.command("jsonl")
@db_option
@click.option("--session", "ident", default=None, metavar="ID", help="Only this session.")
@window_options("sessions")
@pass_app
def export_jsonl(app: AppContext, ident: str | None, since: str | None, until: str | None) -> None:
    """Every span (snake_case keys, one JSON object a line), session by session, oldest first.

    --since and --until select sessions by when they started, with or without --session.
    """
    db = app.db()
    app.caught_up()
    encoder = msgspec.json.Encoder()
    with db.read() as conn:  # one snapshot for the whole export
        for session in _selected(app, ident, since, until):
            for span in spans_of(conn, session.session_id):
                click.echo(encoder.encode(plain(span)).decode())


def _selected(
    app: AppContext, ident: str | None, since: str | None, until: str | None
) -> list[SessionView]:
    """The sessions --session/--since/--until select, oldest first."""
    with app.db().read() as conn:
        if ident is not None:
            session = lookup_session(conn, ident)
            started = session.started_at
            inside = (
                started is not None
                and (since is None or started >= since)
                and (until is None or started < until)
            )
            if (since or until) and not inside:
                click.echo(
                    f"session {session.session_id} started {started or 'at no known time'},"
                    " outside --since/--until: nothing exported",
                    err=True,
                )
                return []
            return [session]
        return list(reversed(list_sessions(conn, since=since, until=until)))


class ExportRefused(click.ClickException):
    """The receiver refused the export (or some of its spans): exit 2."""

    exit_code = 2


class ExportUnreachable(click.ClickException):
    """The receiver could not be reached through every retry: exit 1."""

    exit_code = 1


class _FileSink:
    """OTLP/JSON, one request a line (the OTLP file format a Collector's otlpjsonfile reads)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def post(self, body: bytes) -> Accepted:
        self.out.write(otlp_json(body) + "\n")
        return Accepted()


@export.command("otlp")
@db_option
@click.option("--endpoint", metavar="URL", help="OTLP/HTTP receiver; spans go to URL/v1/traces.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write OTLP/JSON lines to this file instead (- for stdout).",
)
@click.option("--session", "ident", default=None, metavar="ID", help="Only this session.")
@window_options("sessions")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="K=V",
    help="HTTP header for the receiver, e.g. authorization=Bearer… (repeatable).",
)
@click.option(
    "--changed",
    is_flag=True,
    help="Only sessions that changed since their last export to this endpoint.",
)
@click.option(
    "--project",
    default=DEFAULT_PROJECT,
    show_default=True,
    help="openinference.project.name: the Phoenix project the traces land in.",
)
@click.option(
    "--batch-bytes",
    type=click.IntRange(min=64 * 1024),
    default=DEFAULT_BATCH_BYTES,
    show_default=True,
    help="Largest request body before compression (stay under the receiver's limit).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Retries of a request on 429/502/503/504 or a connection error (with backoff).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds."
)
@pass_app
def export_otlp(
    app: AppContext,
    endpoint: str | None,
    out: str | None,
    ident: str | None,
    since: str | None,
    until: str | None,
    headers: tuple[str, ...],
    changed: bool,
    project: str,
    batch_bytes: int,
    retries: int,
    timeout: float,
) -> None:
    """Sessions as OpenTelemetry traces (OTLP/HTTP protobuf, gzip), one trace per session.

    Each session is one resource (service.name=skillops) and one trace under a root span
    that carries its verdict, annotations and eval results; span ids are the derived ids, so
    exporting again replaces rather than duplicates where the receiver deduplicates. A
    failed call is a span with status ERROR, a blocked one UNSET with skillops.outcome.
    Exit 2 when the receiver refuses, 1 when it cannot be reached.
    """
    if (endpoint is None) == (out is None):
        raise click.UsageError("give exactly one of --endpoint URL and --out FILE")
    if out is not None and (headers or changed):
        raise click.UsageError("--header and --changed go with --endpoint, not --out")
    try:
        parsed = [parse_header(h) for h in headers]
        sender = (
            Sender(endpoint, parsed, timeout=timeout, attempts=retries + 1) if endpoint else None
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    db = app.db()
    app.caught_up()
    sessions = _selected(app, ident, since, until)
    target = sender.url if sender is not None else None
    due = due_sessions(db, target if changed else None, sessions)
    if sender is not None:
        try:
            report = export_sessions(
                db, sender, due, target=target, max_bytes=batch_bytes, project=project
            )
        except ExportIncomplete as exc:
            done = f"{exc.report.sessions} of {len(due)} sessions exported"
            if isinstance(exc.cause, ReceiverRefused):
                raise ExportRefused(f"{exc.cause} ({done})") from exc
            raise ExportUnreachable(f"{exc.cause} ({done})") from exc
        finally:
            sender.close()
        where = sender.url
    else:
        assert out is not None
        try:
            stream = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageFailure(f"{out}: cannot write: {exc.strerror}") from None
        try:
            report = export_sessions(
                db, _FileSink(stream), due, target=None, max_bytes=batch_bytes, project=project
            )
        except OSError as exc:
            raise UsageFailure(f"{out}: cannot write: {exc.strerror}") from exc
        finally:
            if stream is not sys.stdout:
                stream.close()
        where = "stdout" if out == "-" else out
    click.echo(
        f"exported {report.sessions} sessions ({report.spans} spans, {report.batches} requests)"
        f" to {where}",
        err=True,
    )
    if report.rejected:
        raise ExportRefused(
            f"{where}: receiver rejected {report.rejected} of {report.spans} spans:"
            f" {report.rejected_message or 'no reason given'}"
        )
