"""Capture's own columns and tables in databases created before they existed."""

from __future__ import annotations

from ..events import Database

# Mirrors the capture hunk at the end of the schema in events/_db.py (new databases).
_COLUMNS = {
    "seen_size": "INTEGER NOT NULL DEFAULT 0",
    "lost": "INTEGER NOT NULL DEFAULT 0",
    "tail_digest": "TEXT NOT NULL DEFAULT ''",
}
_PROBLEMS = """
CREATE TABLE IF NOT EXISTS capture_problems (
    path    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    agent   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (path, kind)
)
"""


def _missing(db: Database) -> tuple[list[str], bool]:
    conn = db.conn
    columns = {r[1] for r in conn.execute("PRAGMA table_info(capture_sources)")}
    problems = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'capture_problems'"
    ).fetchone()
    return [c for c in _COLUMNS if c not in columns], problems is None


def capture_schema_current(db: Database) -> bool:
    """Whether the database has every column and table capture uses."""
    with db.read():
        columns, problems = _missing(db)
    return not columns and not problems


def ensure_capture_schema(db: Database) -> None:
    """Add capture's columns and tables if the database predates them (idempotent)."""
    if capture_schema_current(db):
        return
    with db.write() as conn:
        columns, problems = _missing(db)  # again under the write lock: another may have
        for name in columns:
            conn.execute(f"ALTER TABLE capture_sources ADD COLUMN {name} {_COLUMNS[name]}")
        if problems:
            conn.execute(_PROBLEMS)
