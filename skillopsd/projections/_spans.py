"""What the projections of derived spans share."""

from __future__ import annotations

from collections.abc import Container

import apsw


def delete_stale(conn: apsw.Connection, table: str, session_id: str, keep: Container[str]) -> None:
    """``DELETE FROM table WHERE session_id = ? AND span_id NOT IN keep``: the rows of a
    session's spans its newest derivation no longer has (``table``'s key is ``span_id``).

    The session's ids are read and compared here: handing SQLite the derivation's ids as
    JSON (``NOT IN json_each``) made it parse them into a temporary index for every
    SessionDerived, twice what reading the session's rows costs (they are few, mostly kept).
    """
    stale = [
        (span_id,)
        for (span_id,) in conn.execute(
            f"SELECT span_id FROM {table} WHERE session_id = ?", (session_id,)
        )
        if span_id not in keep
    ]
    if stale:
        conn.executemany(f"DELETE FROM {table} WHERE span_id = ?", stale)
