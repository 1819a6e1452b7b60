"""What this machine knows of its syncs to each team server, for ``skillopsctl status``.

Not a checkpoint: the server's own rows are that (a sync always starts from what the server
holds). This is a note of the last look, per server: how many events the server held then,
when a sync last succeeded, the newest error, a refusal. The server is named by its URL with
the password masked: the password is never stored here. Like the export tables it is not a
projection (``rebuild`` leaves it alone: it records what left the machine, which no replay
can know), and it is created on first use.
"""

from __future__ import annotations

import re

import apsw
import msgspec

from ..events import Database
from ..events._db import scalar
from ..events._log import utc_now
from .sync import SyncReport, redact_url, scrub

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_targets (
    server        TEXT PRIMARY KEY,
    content       TEXT NOT NULL,
    live          INTEGER NOT NULL DEFAULT 0,
    machine       TEXT,
    held          INTEGER NOT NULL DEFAULT 0,
    last_ok_at    TEXT,
    last_error    TEXT,
    last_error_at TEXT,
    refused       TEXT
)
"""


class SyncState(msgspec.Struct):
    """``status --json`` ``syncs``: one team server, as last seen from this machine."""

    server: str
    content: str
    live: bool
    machine: str | None
    held: int
    behind: int
    last_ok_at: str | None
    last_error: str | None
    last_error_at: str | None
    refused: str | None


def _ensure(db: Database) -> None:
    with db.read() as conn:
        present = scalar(conn, "SELECT count(*) FROM sqlite_schema WHERE name = 'sync_targets'")
    if not present:
        with db.write() as conn:
            conn.execute(_SCHEMA)
        return
    _clean(db)


# What libpq quotes of a URL it could not parse (a piece of the password, as typed).
_QUOTED_TOKEN = re.compile(
    r'((?:percent-encoded token|percent-encoded value|spaces found in):? )"[^"]*"'
)


def _clean(db: Database) -> None:
    """Rows written by an older version that kept a secret: a server named with its
    ``sslpassword`` in clear (its errors quote it too), an error quoting libpq's token.
    Rewritten masked, their old bytes zeroed (secure_delete)."""
    with db.read() as conn:
        rows = [
            (str(server), error, refused)
            for server, error, refused in conn.execute(
                "SELECT server, last_error, refused FROM sync_targets"
            )
        ]
    fixes = []
    for server, error, refused in rows:
        masked = redact_url(server)
        new_error = None if error is None else _QUOTED_TOKEN.sub(r'\1"***"', scrub(error, server))
        new_refused = None if refused is None else scrub(refused, server)
        if (masked, new_error, new_refused) != (server, error, refused):
            fixes.append((server, masked, new_error, new_refused))
    if not fixes:
        return
    with db.write() as conn:
        conn.execute("PRAGMA secure_delete = ON")
        try:
            for server, masked, error, refused in fixes:
                if masked != server and scalar(
                    conn, "SELECT count(*) FROM sync_targets WHERE server = ?", (masked,)
                ):
                    conn.execute("DELETE FROM sync_targets WHERE server = ?", (server,))
                    continue
                conn.execute(
                    "UPDATE sync_targets SET server = ?, last_error = ?, refused = ?"
                    " WHERE server = ?",
                    (masked, error, refused, server),
                )
        finally:
            conn.execute("PRAGMA secure_delete = OFF")


def register(db: Database, server: str, content: str, *, live: bool) -> None:
    """Note that this machine syncs to ``server`` (so ``status`` shows it before any pass)."""
    _ensure(db)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO sync_targets (server, content, live) VALUES (?, ?, ?)"
            " ON CONFLICT(server) DO UPDATE SET content = excluded.content,"
            " live = max(live, excluded.live)",
            (server, content, int(live)),
        )


def record_progress(db: Database, server: str, held: int) -> None:
    """Mid-sync: the server now holds ``held`` events of this machine."""
    with db.write() as conn:
        conn.execute("UPDATE sync_targets SET held = ? WHERE server = ?", (held, server))


def record_report(db: Database, server: str, report: SyncReport) -> None:
    """After a sync that reached the server: what it holds, and the refusal if any."""
    _ensure(db)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO sync_targets (server, content) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (server, report.content),
        )
        conn.execute(
            "UPDATE sync_targets SET content = ?, machine = ?, held = ?, refused = ?,"
            " last_ok_at = CASE WHEN ? IS NULL THEN ? ELSE last_ok_at END WHERE server = ?",
            (
                report.content,
                report.machine or None,
                report.held,
                report.refused,
                report.refused,
                utc_now(),
                server,
            ),
        )


def record_error(db: Database, server: str, content: str, message: str) -> None:
    """The newest failure to reach ``server`` (one line, no password)."""
    _ensure(db)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO sync_targets (server, content) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (server, content),
        )
        conn.execute(
            "UPDATE sync_targets SET last_error = ?, last_error_at = ? WHERE server = ?",
            (message, utc_now(), server),
        )


def sync_states(conn: apsw.Connection, head: int) -> list[SyncState]:
    """Every server this machine syncs to; ``behind`` counts the events of a log whose head
    is ``head`` that the server did not hold at the last look. An error older than the last
    success is history, not state: it is left out."""
    if not scalar(conn, "SELECT count(*) FROM sqlite_schema WHERE name = 'sync_targets'"):
        return []
    out = []
    for server, content, live, machine, held, ok_at, error, error_at, refused in conn.execute(
        "SELECT server, content, live, machine, held, last_ok_at, last_error, last_error_at,"
        " refused FROM sync_targets ORDER BY server"
    ):
        current = error_at is not None and (ok_at is None or error_at >= ok_at)
        out.append(
            SyncState(
                server=server,
                content=content,
                live=bool(live),
                machine=machine,
                held=int(held),
                behind=max(0, head - int(held)),
                last_ok_at=ok_at,
                last_error=error if current else None,
                last_error_at=error_at if current else None,
                refused=refused,
            )
        )
    return out
