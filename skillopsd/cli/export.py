"""``skillopsctl export jsonl``: spans as JSON lines."""

from __future__ import annotations

import click
import msgspec

from ..projections.session_views import find_session, list_sessions, spans_of
from ._app import AppContext, NotFound, cli, db_option, pass_app
from ._output import plain
from ._time import SINCE


@cli.group()
def export() -> None:
    """Export derived data."""


@export.command("jsonl")
@db_option
@click.option("--session", "ident", default=None, metavar="ID", help="Only this session.")
@click.option("--since", type=SINCE, default=None, help="Sessions started since (7d or ISO).")
@pass_app
def export_jsonl(app: AppContext, ident: str | None, since: str | None) -> None:
    """Every span (snake_case keys, one JSON object a line), session by session."""
    db = app.db()
    app.caught_up()
    encoder = msgspec.json.Encoder()
    with db.read() as conn:
        if ident is not None:
            session = find_session(conn, ident)
            if session is None:
                raise NotFound(f"unknown session {ident!r} (see skillopsctl sessions)")
            sessions = [session]
        else:
            sessions = list(reversed(list_sessions(conn, since=since)))
        for session in sessions:
            for span in spans_of(conn, session.session_id):
                click.echo(encoder.encode(plain(span)).decode())
