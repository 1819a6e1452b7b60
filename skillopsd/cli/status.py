"""``skillopsctl status``: where the database is and how far each projection has got."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import apsw
import msgspec

from .._lockfile import holder
from .._paths import default_db_path
from ..events import Database
from ..events._db import scalar
from ..events._private import LoosePermission, loose
from ..export import TargetLag, current_changes, has_tables, target_lags
from ..pricing.prices import PRICES_VERSION
from ..projections.usage import Unpriced, unpriced_models
from ..sources import STORES, text_path
from ._app import AppContext, cli, db_option, json_option, pass_app
from ._output import echo, emit_json, plural, say, table
from ._refusal import NOT_THIS_HISTORY
from ._time import stamps, utc_option

if TYPE_CHECKING:  # imported when a sync was ever made: the team package loads psycopg
    from ..team.sync_state import SyncState


class ProjectionStatus(msgspec.Struct):
    checkpoint: int
    lag: int
    version: int


class SourceStatus(msgspec.Struct):
    files: int = 0
    lines: int = 0
    bytes: int = 0
    lag_bytes: int = 0
    errors: int = 0
    missing_files: int = 0
    # Bytes of files that vanished before they were read to their end: never captured.
    lost_bytes: int = 0
    # Files and folders that cannot be captured right now (unreadable, not a regular file).
    problems: int = 0


class CaptureProblem(msgspec.Struct):
    agent: str
    path: str
    kind: str
    message: str


class DaemonStatus(msgspec.Struct):
    """Whether a skillopsd runs on this database, since when, and the newest captured line."""

    running: bool
    pid: int | None = None
    since: str | None = None
    last_capture: str | None = None


class Status(msgspec.Struct):
    db: str
    size_bytes: int
    events: int
    head: int
    projections: dict[str, ProjectionStatus]
    sources: dict[str, SourceStatus]
    sessions: int
    problems: list[CaptureProblem] = []
    exports: list[TargetLag] = []
    # Each team server this machine syncs to, as last seen (skillopsctl sync, skillopsd --sync-to).
    syncs: list[SyncState] = []
    daemon: DaemonStatus | None = None
    # The price table's version, and the models whose responses it could not price.
    prices: str = ""
    unpriced: list[Unpriced] = []
    # The database's folder and files others can reach (skillopsd tightens them at start).
    permissions: list[LoosePermission] = []


def _sources(db: Database) -> tuple[dict[str, SourceStatus], list[CaptureProblem]]:
    """Per agent: files tracked, what was captured, what is on disk but not yet, what was lost;
    and the files capture cannot read now."""
    out = {agent: SourceStatus() for agent in sorted(STORES)}
    with db.read() as conn:
        rows = list(
            conn.execute(
                "SELECT agent, path, device, inode, offset, lines, bytes, errors, seen_size, lost"
                " FROM capture_sources"
            )
        )
        problems = [
            CaptureProblem(*r)
            for r in conn.execute(
                "SELECT agent, path, kind, message FROM capture_problems ORDER BY path, kind"
            )
        ]
    for agent, path, device, inode, offset, lines, size, errors, seen, lost in rows:
        s = out.setdefault(agent, SourceStatus())
        s.files += 1
        s.lines += lines
        s.bytes += size
        s.errors += errors
        try:
            st = os.stat(text_path(path))
        except OSError:
            s.missing_files += 1
            s.lost_bytes += max(lost, seen - offset)
            continue
        if (st.st_dev, st.st_ino) == (device, inode) and st.st_size >= offset:
            s.lag_bytes += st.st_size - offset
        else:  # replaced or truncated since: it will be read again from the start
            s.lag_bytes += st.st_size
    for problem in problems:
        out.setdefault(problem.agent, SourceStatus()).problems += 1
    return out, problems


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _daemon(db: Database) -> DaemonStatus:
    held = holder(db.path)
    with db.read() as conn:
        # Walks back from the head: captured lines are most of the log.
        last = scalar(
            conn,
            "SELECT recorded_at FROM events WHERE type = 'TranscriptLineCaptured'"
            " ORDER BY position DESC LIMIT 1",
        )
    if held is None:
        return DaemonStatus(running=False, last_capture=last)
    return DaemonStatus(running=True, pid=held.pid, since=held.since, last_capture=last)


def _daemon_line(d: DaemonStatus, utc: bool) -> str:
    (since, last), zone = stamps([d.since, d.last_capture], utc)
    captured = f"last capture {last} {zone}" if d.last_capture else "nothing captured yet"
    if d.running:
        return f"daemon    running (pid {d.pid}, since {since} {zone}); {captured}"
    return f"daemon    not running (skillopsd starts it); {captured}"


_UNPRICED = {
    "price": "of a model the price table does not know",
    "model": "without a model name",
    "tokens": "without both input and output counts",
}


@cli.command()
@db_option
@utc_option
@json_option
@pass_app
def status(app: AppContext, utc: bool, as_json: bool) -> None:
    """Database location and size, event count, whether a daemon runs on it (pid, since,
    last capture), and each projection's checkpoint and lag.

    Status does not catch projections up, so the lag shows what a running daemon has not
    yet folded.
    """
    db = app.db()
    states = app.engine().states()
    sources, problems = _sources(db)
    with db.read() as conn:
        head = scalar(conn, "SELECT max(position) FROM events") or 0
        # As last projected (status does not catch up): see the sessions projection's lag.
        projected = any(s.name == "sessions" and s.checkpoint for s in states)
        sessions = scalar(conn, "SELECT count(*) FROM p_sessions") if projected else 0
        priced = any(s.name == "usage" and s.checkpoint for s in states)
        unpriced = unpriced_models(conn) if priced else []
        syncs = _syncs(conn, head)
    exports = _exports(db) if projected else []
    report = Status(
        db=str(db.path),
        size_bytes=db.size_bytes(),
        # Positions are gapless from 1 (``verify`` proves it), so the head is the count.
        events=head,
        head=head,
        projections={
            s.name: ProjectionStatus(checkpoint=s.checkpoint, lag=s.lag, version=s.version)
            for s in states
        },
        sources=sources,
        sessions=sessions,
        problems=problems,
        exports=exports,
        syncs=syncs,
        daemon=_daemon(db),
        prices=f"genai-prices {PRICES_VERSION}",
        unpriced=unpriced,
        permissions=_permissions(db),
    )
    if as_json:
        emit_json(report)
        return
    echo(f"database  {report.db} ({_human_size(report.size_bytes)})")  # a path, whole
    echo(f"events    {report.events} (head {report.head})")
    echo(f"sessions  {report.sessions}")
    if report.daemon is not None:
        say(_daemon_line(report.daemon, utc), indent=10)
    say(f"prices    {report.prices} (the table shipped with it; never fetched)", indent=10)
    for u in report.unpriced:
        responses = plural(u.responses, "response")
        say(
            f"no price  {u.model} ({u.system or 'unknown system'}): {responses}"
            f" {_UNPRICED.get(u.reason, u.reason)}, not in any cost",
            indent=10,
        )
    echo()
    table(
        [
            [
                agent,
                str(s.files),
                str(s.lines),
                _human_size(s.bytes),
                _human_size(s.lag_bytes),
                _human_size(s.lost_bytes),
                str(s.errors),
                str(s.problems),
            ]
            for agent, s in report.sources.items()
        ],
        ["agent", "files", "lines", "captured", "lag", "lost", "errors", "problems"],
    )
    for problem in report.problems:
        echo(f"cannot capture {problem.path}: {problem.message} [{problem.kind}]")
    echo()
    table(
        [[n, str(p.checkpoint), str(p.lag)] for n, p in report.projections.items()],
        ["projection", "checkpoint", "lag"],
    )
    for lag in report.exports:
        say(_export_line(lag), indent=10)
    for state in report.syncs:
        say(_sync_line(state, utc), indent=10)
    _show_permissions(report.permissions)


# --- permissions (issue 19): the database's folder and files, 0700 / 0600 ----------------


def _permissions(db: Database) -> list[LoosePermission]:
    return loose(db.path, default_db_path().parent)


def _show_permissions(found: list[LoosePermission]) -> None:
    if found:
        echo()
    for item in found:
        echo(f"permissions  {item.describe()}")


def _exports(db: Database) -> list[TargetLag]:
    """Each OTLP receiver's lag: sessions whose newest change it has not acknowledged."""
    with db.read() as conn:
        if not has_tables(conn):
            return []  # nothing was ever exported from this database
    found = current_changes(db)
    with db.read() as conn:
        return target_lags(conn, {sid: (c.position, c.recorded_at) for sid, c in found.items()})


def _export_line(lag: TargetLag) -> str:
    how = "live" if lag.live else "by hand"
    line = f"export    {lag.target} ({how}): {lag.exported}/{lag.sessions} sessions exported"
    line += f", {lag.behind} behind" if lag.behind else ", up to date"
    if lag.behind and lag.oldest_change:
        line += f" (oldest change {lag.oldest_change})"
    if lag.last_error:
        line += f"; last error {lag.last_error_at}: {lag.last_error}"
    return line


def _syncs(conn: apsw.Connection, head: int) -> list[SyncState]:
    if not has_tables(conn, "sync_targets"):
        return []  # this machine never synced: no need to load the team package
    from ..team.sync_state import sync_states

    return sync_states(conn, head)


def _sync_line(state: SyncState, utc: bool) -> str:
    (ok_at, error_at), zone = stamps([state.last_ok_at, state.last_error_at], utc)
    how = "live" if state.live else "by hand"
    line = f"sync      {state.server} ({how}, content {state.content}): "
    line += f"last sync {ok_at} {zone}" if state.last_ok_at else "never synced"
    behind = plural(state.behind, "event")
    if state.behind:
        line += f", {behind} not on the server"
    else:  # a server never reached is not "up to date", even with nothing to send
        line += ", up to date" if state.last_ok_at else ", nothing to send yet"
    if state.refused:
        line += f"; refused: {state.refused}"
        if any(words in state.refused for words in NOT_THIS_HISTORY):
            # A copied or restored database (G22): the way forward is long; sync says it.
            line += (
                " (a copied or restored database: skillopsctl sync says how to sync it as a new"
                " machine)"
            )
    if state.last_error:
        line += f"; last error {error_at} {zone}: {state.last_error}"
    return line
