"""``skillopsctl export jsonl``: spans as JSON lines."""

from __future__ import annotations

import click
import msgspec

from ..projections.session_views import list_sessions, spans_of
from ._app import AppContext, cli, db_option, pass_app
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
    with db.read() as conn:
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
                return
            sessions = [session]
        else:
            sessions = list(reversed(list_sessions(conn, since=since, until=until)))
        for session in sessions:
            for span in spans_of(conn, session.session_id):
                click.echo(encoder.encode(plain(span)).decode())
