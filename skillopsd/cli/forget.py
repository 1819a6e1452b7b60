"""``skillopsctl forget``: erase a session's or a file's stored lines and what was derived."""

from __future__ import annotations

import click
import msgspec

from .. import forgetting
from ..deriving import SessionDeriver
from ..events import LogError
from ..sources import path_text
from ._app import AppContext, NotFound, UsageFailure, cli, db_option, json_option, pass_app
from ._output import echo, emit_json


class ForgetOutput(msgspec.Struct):
    """``forget --json``: what was (or, with ``--dry-run``, would be) erased."""

    dry_run: bool
    scope: str
    target: str
    session_ids: list[str]
    source_ids: list[str]
    events: int
    lines: int
    capture_errors: int
    derived: int
    bytes: int
    records: list[int]
    wal_cleared: bool
    reason: str
    author: str


@cli.command()
@db_option
@click.argument("session", metavar="[SESSION]", required=False)
@click.option(
    "--source",
    metavar="FILE",
    default=None,
    help="Forget one transcript file (a path as captured, or its source id) instead.",
)
@click.option("--reason", required=True, help="Why (recorded in the log).")
@click.option("--author", default=None, help="Who asks (default: your login name).")
@click.option("--dry-run", is_flag=True, help="Show what would be erased; erase nothing.")
@json_option
@pass_app
def forget(
    app: AppContext,
    session: str | None,
    source: str | None,
    reason: str,
    author: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Erase a session's (or one file's) stored lines and everything derived from them.

    SESSION is our id, the agent's id or a unique prefix (as for session show); or give
    --source FILE (a path as captured, or a source id). The payload bytes are destroyed in
    the database file and its WAL; a PayloadsErased event records what, why and by whom,
    and verify still passes (the chain commits to each payload's digest).
    Annotations stay. Lines the agent appends to the file later are captured as new.
    """
    if (session is None) == (source is None):
        raise click.UsageError("give either SESSION or --source FILE (not both)")
    if not reason.strip():
        raise click.UsageError("--reason must not be empty")
    who = author or forgetting.default_author()
    db = app.db()
    deriver = SessionDeriver(db)
    if session is not None:
        key = forgetting.resolve_session(deriver, session)
        if key is None:
            raise NotFound(f"unknown session {session!r} (see skillopsctl sessions)")
        planned = forgetting.plan_session(db, deriver, key)
        target = f"session {key.session_id} ({key.agent} {key.native_id})"
    else:
        assert source is not None
        sources = forgetting.resolve_sources(db, source)
        if not sources:
            raise NotFound(
                f"unknown source {path_text(source)}: no file was captured under that path or id"
            )
        planned = forgetting.plan_sources(db, deriver, sources)
        target = f"file {source}"
    erased = forgetting.Erased(records=[])
    if not dry_run and planned.positions:
        try:
            erased = forgetting.execute(db, planned, reason=reason, author=who)
        except LogError as exc:
            raise UsageFailure(f"{db.path}: {exc}") from exc
        # What remains of a session (its other files) is derived again without the erased.
        keys = {k for k in (deriver.key_of(s) for s in planned.source_ids) if k is not None}
        deriver.derive(keys)
        app.caught_up()
    out = ForgetOutput(
        dry_run=dry_run,
        scope=planned.scope,
        target=target,
        session_ids=planned.session_ids,
        source_ids=planned.source_ids,
        events=len(planned.positions),
        lines=planned.lines,
        capture_errors=planned.capture_errors,
        derived=planned.derived,
        bytes=planned.bytes,
        records=erased.records,
        wal_cleared=erased.wal_cleared,
        reason=reason,
        author=who,
    )
    if as_json:
        emit_json(out)
        return
    if not planned.positions:
        echo(f"nothing to erase: {target} holds no stored lines (already forgotten?)")
        return
    verb = "would erase" if dry_run else "erased"
    echo(
        f"{verb} {out.events} events of {target}: {out.lines} lines,"
        f" {out.capture_errors} capture errors, {out.derived} derived events ({out.bytes} bytes)"
    )
    if erased.records:
        where = ", ".join(map(str, erased.records))
        echo(f"recorded at position {where} by {who}: {reason}")
    if not erased.wal_cleared:
        echo(
            f"warning: {db.path}-wal is in use by another reader; the erased bytes leave it"
            " at its next checkpoint",
            err=True,
        )
