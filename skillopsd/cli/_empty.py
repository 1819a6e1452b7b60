"""Why a listing is empty: which filter left nothing, and what the newest session is."""

from __future__ import annotations

import apsw

from ..projections.session_views import list_sessions
from ._time import stamps


def why_empty(
    conn: apsw.Connection,
    noun: str,
    *,
    since: str | None = None,
    until: str | None = None,
    agent: str | None = None,
    skill: str | None = None,
    verdict: str | None = None,
    utc: bool = False,
) -> str:
    """One line: ``no sessions since 2026-12-01 09:00 CET; the newest session started …``."""
    if not list_sessions(conn, limit=1):
        if _is_replica(conn):  # --team: status does not run there, and nothing is captured
            return "no sessions on the team server (no machine has synced one)"
        return (
            "no sessions captured yet (skillopsd captures the agents' transcripts;"
            " skillopsctl status shows what it found)"
        )
    scope = []
    if agent:
        scope.append(f"of agent {agent}")
    if skill:
        scope.append(f"that loaded skill {skill}")
    if verdict:
        scope.append(f"with verdict {verdict}")
    filtered = list_sessions(conn, agent=agent, skill=skill, verdict=verdict, limit=1)
    what = " ".join([noun, *scope])
    if not filtered:
        return f"no {what} (without filters: skillopsctl sessions)"
    if since is None and until is None:
        return f"no {what}"

    def at(value: str) -> str:
        (text,), zone = stamps([value], utc)
        return f"{text} {zone}"

    window = []
    if since:
        window.append(f"since {at(since)}")
    if until:
        window.append(f"before {at(until)}")
    newest = at(filtered[0].started_at) if filtered[0].started_at else "at an unknown time"
    return f"no {what} {' and '.join(window)}; the newest session started {newest}"


def _is_replica(conn: apsw.Connection) -> bool:
    """Whether ``conn`` reads a team server's replica (team/replica.py's own table)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'team_server'"
    ).fetchone()
    return row is not None
