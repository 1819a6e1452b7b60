"""``skillopsctl ingest``: capture given files or folders once, as the daemon would."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from ..deriving import SessionDeriver
from ..events import EventLog, utc_now
from ..sources import STORES, Capturer, ScanResult, Store, capture_all, expand_paths
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
from ._output import echo, emit_json, plural

_decoder = msgspec.json.Decoder()


def _holds_record_of(path: Path, store: Store) -> bool:
    """Whether some line of ``path`` is a record of ``store``'s agent (true if unreadable).

    ``--agent`` skips content sniffing, so without this any file (``/bin/true``) would
    become a session forever. A file that cannot be read here is left to capture, which
    records why.
    """
    try:
        if not path.is_file():  # a FIFO or device: never opened here
            return True
        with open(path, "rb") as fh:
            if store.document(path) is not None:  # one JSON document, rewritten whole
                try:
                    return store.sniff([_decoder.decode(fh.read())])
                except (msgspec.DecodeError, RecursionError, ValueError):
                    return False
            for line in fh:
                if not line.lstrip().startswith(b"{"):
                    continue
                try:
                    record = _decoder.decode(line)
                except (msgspec.DecodeError, RecursionError, ValueError):
                    continue
                if store.sniff([record]):
                    return True
    except OSError:
        return True
    return False


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
    help="Read every file as this agent's (default: tell from the content); a named file"
    " in which no line is a record of that agent is refused.",
)
@click.option("--no-redact", is_flag=True, help="Store lines without masking secrets.")
@json_option
@pass_app
def ingest(
    app: AppContext, paths: tuple[Path, ...], agent: str | None, no_redact: bool, as_json: bool
) -> None:
    """Capture transcript files (folders are searched for *.jsonl, *.json) into the log once."""
    files = []
    skipped = []
    refused = []
    named = {p.resolve(): p for p in paths if not p.is_dir()}
    for path, store in expand_paths([p.resolve() for p in paths], agent):
        if store is not None and agent is not None and not _holds_record_of(path, store):
            if path in named:
                refused.append(str(named[path]))
            else:
                skipped.append(str(path))
        elif store is None:
            skipped.append(str(path))
        else:
            files.append((path, store))
    if refused:
        more = f" (and {plural(len(refused) - 1, 'more file')})" if len(refused) > 1 else ""
        raise click.ClickException(
            f"{refused[0]}{more}: no line is a {agent} transcript record; nothing captured"
        )
    if not files:
        what = f"no {agent} transcript" if agent else "no transcript recognised"
        raise UsageFailure(
            f"{what} in {', '.join(map(str, paths))}{'' if agent else ' (try --agent)'}"
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
    # The files were read whole: what batches left one payload per row goes into frames.
    EventLog(db).pack(utc_now())
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
    echo(
        f"captured {plural(report.lines, 'line')} ({plural(report.bytes, 'byte')}) from"
        f" {plural(report.files, 'file')}, {plural(report.errors, 'error')};"
        f" derived {plural(report.sessions_derived, 'session')}"
    )
    why = f"no line is a {agent} record" if agent else "not a recognised transcript (try --agent)"
    for name in skipped:
        echo(f"skipped {name}: {why}", err=True)
