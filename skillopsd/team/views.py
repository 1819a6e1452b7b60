"""What a team replica says of where its events came from, for the commands that show it.

Read from the replica's own merge record (``team_links``, ``team_machines``), never from a
projection: which machine brought an event is a fact of the merge, not of the event, and a
local log has no such tables (every function here answers "nothing" there). Commands import
this only with ``--team``.
"""

from __future__ import annotations

from typing import Any

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


class MachineTest(msgspec.Struct, frozen=True, kw_only=True):
    """One open A/B test of a skill as one or more machines run it: the champion and
    challenger bodies (hashes), and that test's executions summed over those machines."""

    champion: str
    challenger: str
    machines: list[str]  # labels, with the start of each machine's id
    champion_executions: int = 0
    champion_successes: int = 0
    challenger_executions: int = 0
    challenger_successes: int = 0


def open_tests(conn: apsw.Connection, skill: str, events: list[Any]) -> list[MachineTest]:
    """Every machine's own open test of ``skill``: its part of the pooled ``skill:NAME``
    stream (``events``, in order) folded as that machine folds it, so two machines testing
    different challengers of one champion are two tests, not the newest one only. One test
    per champion and challenger pair, its machines together; empty on a local log."""
    from ..versions.state import fold

    if not is_replica(conn):
        return []
    positions: dict[str, set[int]] = {}
    wanted = [e.position for e in events]
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for machine, position in conn.execute(
            f"SELECT machine, position FROM team_links WHERE position IN ({marks})", chunk
        ):
            positions.setdefault(str(machine), set()).add(int(position))
    labels = {
        str(m): str(label) for m, label in conn.execute("SELECT machine, label FROM team_machines")
    }
    found: dict[tuple[str, str], MachineTest] = {}
    for machine in sorted(positions):
        mine = positions[machine]
        state = fold(skill, [e for e in events if e.position in mine])
        if state.experiment is None or state.champion is None or state.challenger is None:
            continue
        champ = state.stats(state.champion, state.experiment)
        chall = state.stats(state.challenger, state.experiment)
        pair = (state.champion, state.challenger)
        was = found.get(pair) or MachineTest(champion=pair[0], challenger=pair[1], machines=[])
        found[pair] = MachineTest(
            champion=pair[0],
            challenger=pair[1],
            machines=[*was.machines, f"{labels.get(machine, '?')} {machine[:6]}"],
            champion_executions=was.champion_executions + champ.executions,
            champion_successes=was.champion_successes + champ.successes,
            challenger_executions=was.challenger_executions + chall.executions,
            challenger_successes=was.challenger_successes + chall.successes,
        )
    return list(found.values())
