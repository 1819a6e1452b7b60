"""``skillopsctl export jsonl``: spans as JSON lines; ``export otlp``: traces to a receiver."""

from __future__ import annotations

import os
import sys
import time
from typing import IO

import click
import msgspec

from .._defaults import DEFAULT_SETTLE_SECONDS
from ..export import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_PROJECT,
    DEFAULT_RETRY_BUDGET,
    Accepted,
    ExportIncomplete,
    PhoenixAPI,
    ReceiverRefused,
    Sender,
    due_sessions,
    export_sessions,
    otlp_json,
    parse_header,
    record_error,
    register,
    settled,
    target_key,
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


def _private(path: str) -> IO[str]:
    """``path`` opened for writing, readable by its owner only (spans hold prompts and
    commands): created 0600, and an existing file's mode tightened before anything is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


class ExportRefused(click.ClickException):
    """The receiver refused the export (or some of its spans): exit 2."""

    exit_code = 2


class ExportUnreachable(click.ClickException):
    """The receiver could not be reached through every retry: exit 1."""

    exit_code = 1


class _FileSink:
    """OTLP/JSON, one ExportTraceServiceRequest a line (the OTLP file exporter's format, which
    a Collector's otlpjsonfile receiver reads): lowerCamelCase keys, hex trace and span ids,
    enums as integers."""

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
    help="Write the requests to this file instead, as OTLP/JSON lines (one"
    " ExportTraceServiceRequest a line, hex ids, integer enums; mode 0600; - for stdout).",
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
    "--verify",
    type=click.Choice(["phoenix"]),
    default=None,
    help="Read back what the receiver stored (Phoenix's API) before counting a session"
    " exported; send again what is missing; labels and eval results become span annotations,"
    " and a changed session replaces its old trace.",
)
@click.option(
    "--no-content",
    is_flag=True,
    help="Leave out every text: prompts, answers, LLM input and output messages, commands and"
    " call arguments, error texts, titles, notes, paths (ids, times, kinds, statuses, tokens"
    " and outcomes stay).",
)
@click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_SETTLE_SECONDS,
    show_default=True,
    help="Only sessions quiet this long (or whose transcript ended that long ago); 0: all.",
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
    default=None,
    help="At most N retries of a request on 429/5xx or a connection error (default: as many"
    " as --retry-budget allows).",
)
@click.option(
    "--retry-budget",
    type=click.FloatRange(min=0),
    default=DEFAULT_RETRY_BUDGET,
    show_default=True,
    help="Seconds to keep retrying one request (backoff, Retry-After honoured): long enough"
    " for a receiver to restart.",
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
    verify: str | None,
    no_content: bool,
    settle_seconds: float,
    project: str,
    batch_bytes: int,
    retries: int | None,
    retry_budget: float,
    timeout: float,
) -> None:
    """Sessions as OpenTelemetry traces (OTLP/HTTP protobuf, gzip), one trace per session.

    Each session is one resource (service.name=skillops) and one trace under a root span
    that carries its verdict, annotations and eval results; span ids are the derived ids.
    Only settled sessions go (--settle-seconds). Phoenix keeps the first copy of a span id:
    with --verify phoenix a changed session replaces its old trace, and a session counts as
    exported only once Phoenix returns all of it. A failed call is a span with status ERROR,
    a blocked one UNSET with skillops.outcome. Exit 2 when the receiver refuses, 1 when it
    cannot be reached or did not store what it acknowledged.
    """
    if (endpoint is None) == (out is None):
        raise click.UsageError("give exactly one of --endpoint URL and --out FILE")
    if out is not None and (headers or changed or verify):
        raise click.UsageError("--header, --changed and --verify go with --endpoint, not --out")
    try:
        parsed = [parse_header(h) for h in headers]
        sender = (
            Sender(
                endpoint,
                parsed,
                timeout=timeout,
                attempts=None if retries is None else retries + 1,
                budget=retry_budget,
            )
            if endpoint
            else None
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    db = app.db()
    app.caught_up()
    sessions = _selected(app, ident, since, until)
    target = target_key(sender.url, project, DEFAULT_PROJECT) if sender is not None else None
    # What was exported before is known even without --changed: a session sent again then
    # replaces its old trace where the receiver keeps first copies (--verify phoenix).
    due = due_sessions(db, target, sessions, changed_only=changed)
    due, waiting, _soonest = settled(due, time.time(), settle_seconds)
    if waiting:
        click.echo(
            f"{len(waiting)} session(s) still active (changed in the last"
            f" {settle_seconds:g}s) left for later: --settle-seconds 0 sends them now",
            err=True,
        )
    phoenix = (
        PhoenixAPI(endpoint, project, parsed, timeout=timeout, budget=retry_budget)
        if verify == "phoenix" and endpoint is not None
        else None
    )
    if sender is not None:
        assert target is not None
        register(db, target, live=False)  # status shows the target, and why it is behind
        try:
            report = export_sessions(
                db,
                sender,
                due,
                target=target,
                max_bytes=batch_bytes,
                project=project,
                phoenix=phoenix,
                content=not no_content,
            )
        except ExportIncomplete as exc:
            record_error(db, target, str(exc.cause))
            done = f"{exc.report.sessions} of {len(due)} sessions exported"
            if isinstance(exc.cause, ReceiverRefused):
                raise ExportRefused(f"{exc.cause} ({done})") from exc
            raise ExportUnreachable(f"{exc.cause} ({done})") from exc
        finally:
            sender.close()
        where = sender.url
        if phoenix is not None:
            where += (
                f"; read back {report.verified} sessions from Phoenix"
                + (f", sent {report.resent} again" if report.resent else "")
                + f", {report.annotations} annotations"
            )
    else:
        assert out is not None
        try:
            stream = sys.stdout if out == "-" else _private(out)
        except OSError as exc:
            raise UsageFailure(f"{out}: cannot write: {exc.strerror}") from None
        try:
            report = export_sessions(
                db,
                _FileSink(stream),
                due,
                target=None,
                max_bytes=batch_bytes,
                project=project,
                content=not no_content,
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
