"""``skillopsctl sync``: push this machine's log to a team PostgreSQL."""

from __future__ import annotations

from typing import IO, Any

import click

from .._terminal import safe
from ..team import URL_ENV, Content, SyncError, SyncReport, redact_url, sync
from ..team.sync_state import record_error, record_report
from ..team.urls import read_url
from ._app import AppContext, cli, db_option, json_option, pass_app
from ._output import echo, emit_json, number, plural
from ._refusal import copied_log


class SyncFailed(click.ClickException):
    """The server could not be reached or refused the sync: one line, exit 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(safe(f"skillopsctl sync: {self.format_message()}"), err=True, file=file)


class ChainRefused(SyncFailed):
    """This machine's chain breaks: what came before the break is stored; exit 1."""

    exit_code = 1


@cli.command(name="sync")
@db_option
@click.option(
    "--to",
    "url",
    metavar="URL",
    envvar=URL_ENV,
    default=None,
    help=f"The team PostgreSQL, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (env {URL_ENV};"
    " @FILE reads it from FILE: a password on a command line is visible in ps).",
)
@click.option(
    "--content",
    type=click.Choice([c.value for c in Content]),
    default=Content.DERIVED.value,
    show_default=True,
    help="What leaves this machine: derived (no transcript lines, spans and sessions without"
    " message text), all (every payload), none (labels and decisions only).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Events per server transaction (a killed sync keeps every finished one).",
)
@json_option
@pass_app
def sync_command(app: AppContext, url: str | None, content: str, batch: int, as_json: bool) -> None:
    """Push this machine's log to a team PostgreSQL, resuming where the server stands.

    Each machine is its own stream (its id is the hash of its log's first event). Every
    event's header and payload digest are sent and its hash recomputed from the previous
    one before it is stored, so a re-sync sends nothing twice and a log whose chain breaks is
    refused at the break (what came before it is kept). Payloads go as --content chooses;
    an erasure (skillopsctl forget) synced deletes those payloads on the server too.

    A database copied from another machine or restored from a backup is that machine's log
    to the server; once it has recorded other events it is refused (exit 1), and the
    refusal says how to sync it as a new machine: move it aside, skillopsd --once, sync.
    """
    if not url or not url.strip():
        raise click.UsageError(f"give --to postgresql://… (or set {URL_ENV})")
    try:
        url = read_url(url, "--to")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    db = app.db()
    server = redact_url(url.strip())
    try:
        report = sync(
            db,
            url.strip(),
            Content(content),
            batch=batch,
            say=lambda line: click.echo(safe(f"skillopsctl sync: {line}"), err=True),
            count_narrower=True,
        )
    except SyncError as exc:
        record_error(db, server, content, str(exc))  # for ``skillopsctl status``
        raise SyncFailed(str(exc)) from exc
    record_report(db, server, report)
    if as_json:
        emit_json(report)
    else:
        echo(_summary(report))
    if report.refused is not None:
        raise ChainRefused(copied_log(report.refused, report.machine, app.resolved_path()))


def _summary(report: SyncReport) -> str:
    if not report.machine:
        return f"nothing to sync: the log is empty ({report.server})"
    return (
        f"machine {report.machine} ({report.label}) → {report.server}: sent"
        f" {plural(report.sent, 'event')} (content {report.content}: {number(report.exact)}"
        f" exact, {number(report.derived)} derived, {number(report.withheld)} withheld,"
        f" {number(report.erased)} erased); the server holds {number(report.held)} of"
        f" {number(report.local_events)}; {plural(report.erased_on_server, 'payload')}"
        " erased there"
        + (
            f"; {plural(report.kept_narrower, 'event')} already there stay as they were sent"
            f" (with less than --content {report.content}: it applies to events not yet sent)"
            if report.kept_narrower
            else ""
        )
    )
