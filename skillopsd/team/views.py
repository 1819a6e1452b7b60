"""What a team replica says of where its events came from, for the commands that show it.

Read from the replica's own merge record (``team_links``, ``team_machines``), never from a
projection: which machine brought an event is a fact of the merge, not of the event, and a
local log has no such tables (every function here answers "nothing" there). Commands import
this only with ``--team``.
"""

from __future__ import annotations

import apsw
import msgspec

# Says why a grader that needs message text does not judge a session of the team view.
WITHHELD = "content withheld on the team server"
_CHUNK = 5000


class Origin(msgspec.Struct, frozen=True):
    """The machine a session's derivation came from, and what of its content came."""

    machine: str
    label: str
    content: str  # exact, derived (no message text), withheld, erased


def is_replica(conn: apsw.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'team_links'"
    ).fetchone()
    return bool(row and row[0])


def session_origins(conn: apsw.Connection, session_ids: list[str]) -> dict[str, Origin]:
    """``session id -> Origin`` of the sessions the replica holds (empty for a local log)."""
    if not session_ids or not is_replica(conn):
        return {}
    out: dict[str, Origin] = {}
    wanted = sorted(set(session_ids))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for session_id, machine, label, content in conn.execute(
            "SELECT s.session_id, l.machine, m.label, l.content FROM p_sessions s"
            " JOIN team_links l ON l.position = s.derived_at_position AND l.first = 1"
            " JOIN team_machines m ON m.machine = l.machine"
            f" WHERE s.session_id IN ({marks})",
            chunk,
        ):
            out[str(session_id)] = Origin(str(machine), str(label), str(content))
    return out


def text_withheld(conn: apsw.Connection, session_ids: list[str]) -> set[str]:
    """The sessions whose message text did not reach the team server (``--content derived``):
    a grader that needs it must say so rather than judge an empty text."""
    return {
        sid
        for sid, origin in session_origins(conn, session_ids).items()
        if origin.content != "exact"
    }


def sessions_without_text(conn: apsw.Connection) -> tuple[int, int]:
    """``(sessions, machines)``: how many of the replica's sessions came without message text
    (their machine synced ``--content derived`` or less), so no title or prompt of theirs can
    match a search; ``(0, 0)`` on a local log."""
    if not is_replica(conn):
        return 0, 0
    row = conn.execute(
        "SELECT count(*), count(DISTINCT l.machine) FROM p_sessions s"
        " JOIN team_links l ON l.position = s.derived_at_position AND l.first = 1"
        " WHERE l.content != 'exact'"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
