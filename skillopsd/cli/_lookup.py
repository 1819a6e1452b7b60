"""Finding the session a command line names, with an answer when it names none or several."""

from __future__ import annotations

import apsw

from ..projections.session_views import (
    MIN_PREFIX,
    SessionView,
    count_prefix_matches,
    session_candidates,
)
from ._app import NotFound

_SHOWN = 4


def lookup_session(conn: apsw.Connection, ident: str) -> SessionView:
    """The one session ``ident`` names (id, agent's id, or a unique prefix), else exit 1."""
    found = session_candidates(conn, ident, limit=_SHOWN)
    if len(found) == 1:
        return found[0]
    if not found:
        hint = (
            f"; a prefix needs at least {MIN_PREFIX} characters" if len(ident) < MIN_PREFIX else ""
        )
        raise NotFound(f"unknown session {ident!r}{hint} (see skillopsctl sessions)")
    total = count_prefix_matches(conn, ident)
    listed = ", ".join(
        f"{s.session_id} ({s.agent} {s.native_session_id}"
        f"{' ' + (s.started_at or '')[:10] if s.started_at else ''})"
        for s in found
    )
    more = f" and {total - len(found)} more" if total > len(found) else ""
    raise NotFound(
        f"session prefix {ident!r} is ambiguous: it matches {total} sessions: {listed}{more};"
        " give more characters"
    )
