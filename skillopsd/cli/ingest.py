"""``skillopsctl ingest``: capture given files or folders once, as the daemon would."""

from __future__ import annotations

import os
from pathlib import Path

import click
import msgspec

from ..deriving import SessionDeriver
from ..events import EventLog, utc_now
from ..sources import (
    STORES,
    Capturer,
    ScanResult,
    Store,
    Unreachable,
    broken_link,
    capture_all,
    capture_problem,
    expand_paths,
    folder_problem,
    path_text,
    real_path,
)
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


class IngestProblem(msgspec.Struct):
    """A file or folder given (or found in a folder given) that could not be read, and why."""

    path: str
    kind: str
    message: str


class IngestReport(msgspec.Struct):
    files: int
    lines: int
    bytes: int
    errors: int
    skipped: list[str]
    sessions_derived: int = 0
    # Files and folders that could not be read, named as the daemon names them (exit status 1).
    problems: list[IngestProblem] = msgspec.field(default_factory=list)


def _named(path: Path) -> tuple[Path, Unreachable | None]:
    """A path given on the command line, absolute, or why it cannot be read.

    A link that leads nowhere is its problem (not click's "does not exist"): resolving a
    loop would raise, and the name given is the one to report.
    """
    broken = broken_link(path)
    if broken is not None:
        return path.absolute(), broken
    if not os.path.exists(path):
        raise UsageFailure(f"{path}: no such file or folder")
    return path.resolve(), None


def _skip_reason(path: Path, agent: str | None) -> str:
    """Why a file that could be read was not captured (a link says where it leads)."""
    why = f"no line is a {agent} record" if agent else "not a recognised transcript (try --agent)"
    if os.path.islink(path):
        return f"symbolic link to {path_text(real_path(path))}, {why}"
    return why


@cli.command()
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    """Capture transcript files (folders are searched for *.jsonl, *.json) into the log once.

    A file or folder that cannot be read (a FIFO, no permission, a symbolic link loop or one
    that leads nowhere) is named with why, as skillopsd's status names it, and the exit status
    is 1.
    """
    files: list[tuple[Path, Store]] = []
    skipped: list[tuple[str, str]] = []
    refused = []
    problems: list[IngestProblem] = []
    targets = []
    named: dict[Path, Path] = {}
    for given in paths:
        path, broken = _named(given)
        if broken is not None:
            problems.append(IngestProblem(str(given), broken.kind, broken.message))
            continue
        targets.append(path)
        if not path.is_dir():
            named[path] = given

    def unlistable(exc: OSError) -> None:
        where, problem = folder_problem(exc)
        problems.append(IngestProblem(where, problem.kind, problem.message))

    for path, store in expand_paths(targets, agent, unlistable):
        shown = str(named.get(path, path))
        problem = capture_problem(path)
        if problem is not None:
            problems.append(IngestProblem(shown, problem.kind, problem.message))
        elif store is not None and agent is not None and not _holds_record_of(path, store):
            if path in named:
                refused.append(shown)
            else:
                skipped.append((shown, _skip_reason(path, agent)))
        elif store is None:
            skipped.append((shown, _skip_reason(path, agent)))
        else:
            files.append((path, store))
    if refused:
        more = f" (and {plural(len(refused) - 1, 'more file')})" if len(refused) > 1 else ""
        raise click.ClickException(
            f"{refused[0]}{more}: no line is a {agent} transcript record; nothing captured"
        )
    if not files and problems:
        for name, why in skipped:
            echo(f"skipped {name}: {why}", err=True)
        for earlier in problems[:-1]:
            echo(f"cannot capture {earlier.path}: {earlier.message}", err=True)
        last = problems[-1]
        raise click.ClickException(f"cannot capture {last.path}: {last.message}; nothing captured")
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
        skipped=[name for name, _ in skipped],
        sessions_derived=derived.sessions,
        problems=problems,
    )
    if as_json:
        emit_json(report)
    else:
        echo(
            f"captured {plural(report.lines, 'line')} ({plural(report.bytes, 'byte')}) from"
            f" {plural(report.files, 'file')}, {plural(report.errors, 'error')};"
            f" derived {plural(report.sessions_derived, 'session')}"
            + (
                f"; {plural(len(problems), 'file or folder', 'files or folders')} could not be read"
                if problems
                else ""
            )
        )
        for name, why in skipped:
            echo(f"skipped {name}: {why}", err=True)
        for unread in problems:
            echo(f"cannot capture {unread.path}: {unread.message}", err=True)
    if problems:
        raise click.exceptions.Exit(1)
