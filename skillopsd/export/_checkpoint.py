"""The export checkpoint: per receiver, the log position each session was exported at.

A row is written only after the receiver acknowledged every span of the session, in one
transaction with the target's bookkeeping; so a crash or an outage before that leaves the
session due (it is sent again, whole), and after it the session is not sent again until its
trace changes. The one window left is a crash between the acknowledgement and the commit:
that session is sent twice, with the same span ids, which a deduplicating receiver (Phoenix)
keeps once.

These tables are not projections: ``rebuild`` leaves them alone (they record what left the
machine, which no replay can know). They are created on first use.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from ..events import Database
from ..events._db import scalar
from ..events._log import utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS export_targets (
    target        TEXT PRIMARY KEY,
    live          INTEGER NOT NULL DEFAULT 0,
    spans         INTEGER NOT NULL DEFAULT 0,
    last_ok_at    TEXT,
    last_error    TEXT,
    last_error_at TEXT
);
CREATE TABLE IF NOT EXISTS export_checkpoints (
    target      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    position    INTEGER NOT NULL,
    spans       INTEGER NOT NULL,
    exported_at TEXT NOT NULL,
    PRIMARY KEY (target, session_id)
) WITHOUT ROWID;
"""


class TargetLag(msgspec.Struct):
    """How far one receiver is behind the log."""

    target: str
    live: bool
    sessions: int
    exported: int
    behind: int
    oldest_change: str | None
    last_ok_at: str | None
    last_error: str | None
    last_error_at: str | None


def target_key(url: str, project: str, default_project: str) -> str:
    """The checkpoint's name for a receiver and project: exporting the same sessions to
    another Phoenix project is another target, with its own checkpoint."""
    return url if project == default_project else f"{url} project={project}"


def ensure_tables(db: Database) -> None:
    """Create the checkpoint tables if this database has none yet."""
    with db.read() as conn:
        present = scalar(conn, "SELECT count(*) FROM sqlite_schema WHERE name = 'export_targets'")
    if not present:
        with db.write() as conn:
            conn.execute(_SCHEMA)


def has_tables(conn: apsw.Connection, table: str = "export_targets") -> bool:
    """Whether ``table`` exists (by default: whether anything was ever exported or tried)."""
    return bool(scalar(conn, "SELECT count(*) FROM sqlite_schema WHERE name = ?", (table,)))


def exported_positions(conn: apsw.Connection, target: str) -> dict[str, int]:
    """Session id -> the position its exported trace reflects."""
    return {
        str(sid): int(position)
        for sid, position in conn.execute(
            "SELECT session_id, position FROM export_checkpoints WHERE target = ?", (target,)
        )
    }


def register(db: Database, target: str, *, live: bool) -> None:
    """Record that ``target`` receives exports (so ``status`` shows it before the first ack)."""
    ensure_tables(db)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO export_targets (target, live) VALUES (?, ?)"
            " ON CONFLICT(target) DO UPDATE SET live = max(live, excluded.live)",
            (target, int(live)),
        )


def commit_exported(db: Database, target: str, done: list[tuple[str, int, int]]) -> None:
    """After an acknowledgement: (session id, position, spans) of the sessions it completed."""
    now = utc_now()
    ensure_tables(db)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO export_checkpoints (target, session_id, position, spans, exported_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(target, session_id) DO UPDATE SET"
            " position = max(position, excluded.position), spans = excluded.spans,"
            " exported_at = excluded.exported_at",
            [(target, sid, position, spans, now) for sid, position, spans in done],
        )
        conn.execute(
            "INSERT INTO export_targets (target, spans, last_ok_at) VALUES (?, ?, ?)"
            " ON CONFLICT(target) DO UPDATE SET spans = spans + excluded.spans,"
            " last_ok_at = excluded.last_ok_at",
            (target, sum(d[2] for d in done), now),
        )


def record_error(db: Database, target: str, message: str) -> None:
    """Remember the newest failure to export to ``target`` (``status`` shows it)."""
    with db.write() as conn:
        conn.execute(
            "UPDATE export_targets SET last_error = ?, last_error_at = ? WHERE target = ?",
            (message, utc_now(), target),
        )


def target_lags(conn: apsw.Connection, changes: dict[str, tuple[int, str]]) -> list[TargetLag]:
    """Every known target's lag against ``changes`` (session id -> (position, recorded_at))."""
    if not has_tables(conn):
        return []
    out = []
    rows: list[tuple[Any, ...]] = conn.execute(
        "SELECT target, live, last_ok_at, last_error, last_error_at FROM export_targets"
        " ORDER BY target"
    ).fetchall()
    for target, live, ok_at, error, error_at in rows:
        done = exported_positions(conn, target)
        behind = [c for sid, c in changes.items() if c[0] > done.get(sid, 0)]
        out.append(
            TargetLag(
                target=target,
                live=bool(live),
                sessions=len(changes),
                exported=sum(1 for sid in changes if sid in done),
                behind=len(behind),
                oldest_change=min((c[1] for c in behind if c[1]), default=None),
                last_ok_at=ok_at,
                last_error=error if error_at and (not ok_at or error_at >= ok_at) else None,
                last_error_at=error_at,
            )
        )
    return out
