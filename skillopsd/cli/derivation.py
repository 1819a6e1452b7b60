"""``skillopsctl rederive``: replay captured lines through the current deriver."""

from __future__ import annotations

import sys

import click
import msgspec

from ..derive import DERIVER_VERSION
from ..deriving import SessionDeriver
from ..projections.session_views import session_candidates
from ._app import AppContext, NotFound, cli, db_option, json_option, pass_app
from ._lookup import lookup_session
from ._output import echo, emit_json, plural


class RederiveReport(msgspec.Struct):
    deriver_version: int
    sessions: int
    appended: int
    errors: int


@cli.command()
@db_option
@click.option(
    "--session",
    "ident",
    default=None,
    metavar="ID",
    help="Only this session (derived again even if current).",
)
@json_option
@pass_app
def rederive(app: AppContext, ident: str | None, as_json: bool) -> None:
    """Derive again every session last derived by an older deriver (or one session).

    Annotations, eval results and version decisions are separate events and are untouched.
    A second run appends nothing.
    """
    db = app.db()
    engine = app.caught_up()
    deriver = SessionDeriver(db)
    if ident is not None:
        with db.read() as conn:
            found = session_candidates(conn, ident, limit=2)
            if len(found) > 1:
                lookup_session(conn, ident)  # says which sessions the prefix matches
        wanted = {found[0].session_id} if found else {ident}
        # A session captured but never derived is known only by its files: match its ids.
        keys = {
            k for k in deriver.all_sessions() if k.session_id in wanted or k.native_id in wanted
        }
        if not keys:
            raise NotFound(f"unknown session {ident!r} (see skillopsctl sessions)")
    else:
        keys = deriver.stale()
    if sys.stderr.isatty() and not as_json and len(keys) > 1:
        with click.progressbar(length=len(keys), label="deriving", file=sys.stderr) as bar:
            result = deriver.derive(keys, progress=lambda _n, _t: bar.update(1))
    else:
        result = deriver.derive(keys)
    engine.catch_up()
    report = RederiveReport(
        deriver_version=DERIVER_VERSION,
        sessions=result.sessions,
        appended=result.appended,
        errors=result.errors,
    )
    if as_json:
        emit_json(report)
    else:
        echo(
            f"derived {plural(report.sessions, 'session')} with deriver"
            f" v{report.deriver_version}: {plural(report.appended, 'event')} appended,"
            f" {plural(report.errors, 'unreadable record')}"
        )
