"""``skillopsctl ingest``: capture given files or folders once, as the daemon would."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from ..deriving import SessionDeriver
from ..events import EventLog
from ..sources import STORES, Capturer, ScanResult, capture_all, expand_paths
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
from ._output import emit_json


class IngestReport(msgspec.Struct):
    files: int
    lines: int
    bytes: int
    errors: int
    skipped: list[str]
    sessions_derived: int = 0


@cli.command()
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--agent",
    type=click.Choice(sorted(STORES)),
    default=None,
    help="Read every file as this agent's (default: tell from the content).",
)
@click.option("--no-redact", is_flag=True, help="Store lines without masking secrets.")
@json_option
@pass_app
def ingest(
    app: AppContext, paths: tuple[Path, ...], agent: str | None, no_redact: bool, as_json: bool
) -> None:
    """Capture transcript files (folders are searched for *.jsonl) into the log once."""
    files = []
    skipped = []
    for path, store in expand_paths([p.resolve() for p in paths], agent):
        if store is None:
            skipped.append(str(path))
        else:
            files.append((path, store))
    if not files:
        raise UsageFailure(
            f"no transcript recognised in {', '.join(map(str, paths))} (try --agent)"
        )
    db = app.db(create=True)
    with db.read():
        mark = EventLog(db).head()
    result: ScanResult = capture_all(Capturer(db, redact_secrets=not no_redact), files)
    app.caught_up()
    # As the daemon does: derive the sessions that gained lines (and any left stale).
    deriver = SessionDeriver(db)
    derived = deriver.derive(deriver.touched_since(mark) | deriver.stale())
    app.caught_up()
    report = IngestReport(
        files=result.files,
        lines=result.lines,
        bytes=result.bytes,
        errors=result.errors,
        skipped=skipped,
        sessions_derived=derived.sessions,
    )
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"captured {report.lines} lines ({report.bytes} bytes) from {report.files} files,"
        f" {report.errors} errors; derived {report.sessions_derived} sessions"
    )
    for name in skipped:
        click.echo(f"skipped {name}: not a recognised transcript (try --agent)", err=True)
