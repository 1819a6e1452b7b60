"""Copies of one session: sessions whose model responses are another session's.

Claude Code writes a resumed or forked session as a new file under a new session id that
repeats the earlier history, the same message ids, request ids and tool-use ids included; a
transcript copied by hand, or edited in a byte of its text, keeps them too. ``sessions``
lists every such file as it is, but a session whose responses are all another's is no new
evidence: the gate, ``skill show``, the A/B test's executions and ``eval run`` count the
conversation once.

A session's *keys* are the ids its agent gave what it did: each model response's id
(``gen_ai.response.id``, with its system) and each tool call's id (``gen_ai.tool.call.id``).
Session A is a copy when another session B has every key A has (A has at least one). Among A
and every session holding all of A's keys, the one that counts is the one with the most
keys (a resumed session that went on holds the earlier one's history and its own: it is the
conversation, its ending is the conversation's ending), then the one derived first (log
order: the original, not a copy made of it later, whatever times a copy claims), then the
earliest start, then the smallest id; every other one is a copy of it. A session that
shares only part of its keys with another (a fork that went its own way while the original
went on too) is a session of its own. A session with no keys at all (a Codex chat with no
tool call) is recognised as a copy only by the gate's byte-identical check.

Codex's forks are not copies here: the Codex deriver already leaves out the parent history a
forked rollout replays, so the fork holds only its own work. Gemini CLI and Copilot CLI
resume into the same file.

The keys are a projection (``p_session_keys``, in step with the sessions projection: a newer
derivation's span set replaces the older one; merged, purged and forgotten sessions go); who
is a copy of whom is computed from it when asked, a pure function of the log.
"""

from __future__ import annotations

from collections.abc import Iterable

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import PayloadsErased, SessionDerived, SessionPurged, SpanDerived
from ._engine import Projection
from ._spans import delete_stale

_json = msgspec.json.Encoder()
_SCHEMA = """
CREATE TABLE p_session_keys (
    span_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, key TEXT NOT NULL
);
CREATE INDEX p_session_keys_by_key ON p_session_keys (key, session_id);
CREATE INDEX p_session_keys_by_session ON p_session_keys (session_id);
CREATE TABLE p_session_keys_purged (session_id TEXT PRIMARY KEY);
CREATE TABLE p_session_first (session_id TEXT PRIMARY KEY, position INTEGER NOT NULL);
"""


def span_key(span: SpanDerived) -> str | None:
    """The id the agent gave this span's response or tool call (None: it gave none)."""
    a = span.attributes
    if span.kind == "LLM":
        response = a.get("gen_ai.response.id")
        if isinstance(response, str) and response:
            system = a.get("gen_ai.system")
            return f"response:{system if isinstance(system, str) else ''}:{response}"
        return None
    call = a.get("gen_ai.tool.call.id")
    if span.kind in ("TOOL", "SKILL") and isinstance(call, str) and call:
        return f"call:{call}"
    return None


class SessionKeys(Projection):
    """The table :func:`copies` reads: each session's response and tool-call ids."""

    name = "session_keys"
    version = 1
    tables = ("p_session_keys", "p_session_keys_purged", "p_session_first")
    handles = frozenset({"SessionDerived", "SpanDerived", "SessionPurged", "PayloadsErased"})

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        self.apply_many(conn, [event])

    def apply_many(self, conn: apsw.Connection, events: list[RecordedEvent]) -> None:
        purged = {r[0] for r in conn.execute("SELECT session_id FROM p_session_keys_purged")}
        rows: list[tuple[str, str, str]] = []
        for event in events:
            payload = event.payload
            if isinstance(payload, SpanDerived):
                if payload.session_id in purged:
                    continue
                key = span_key(payload)
                if key is not None:
                    rows.append((payload.span_id, payload.session_id, key))
                else:  # a newer derivation of a span that no longer has an id
                    self._write(conn, rows)
                    conn.execute("DELETE FROM p_session_keys WHERE span_id = ?", (payload.span_id,))
                continue
            self._write(conn, rows)
            if isinstance(payload, SessionDerived):
                if payload.merged_into is not None:
                    self._drop(conn, payload.session_id)
                elif payload.session_id not in purged:
                    conn.execute(
                        "INSERT OR IGNORE INTO p_session_first VALUES (?, ?)",
                        (payload.session_id, event.position),
                    )
                    delete_stale(conn, "p_session_keys", payload.session_id, set(payload.span_ids))
            elif isinstance(payload, SessionPurged):
                purged.add(payload.session_id)
                conn.execute(
                    "INSERT OR IGNORE INTO p_session_keys_purged VALUES (?)", (payload.session_id,)
                )
                self._drop(conn, payload.session_id)
            elif isinstance(payload, PayloadsErased):
                for session_id in sorted(set(payload.session_ids)):
                    self._drop(conn, session_id)
        self._write(conn, rows)

    @staticmethod
    def _drop(conn: apsw.Connection, session_id: str) -> None:
        conn.execute("DELETE FROM p_session_keys WHERE session_id = ?", (session_id,))
        conn.execute("DELETE FROM p_session_first WHERE session_id = ?", (session_id,))

    @staticmethod
    def _write(conn: apsw.Connection, rows: list[tuple[str, str, str]]) -> None:
        if rows:
            conn.executemany("INSERT OR REPLACE INTO p_session_keys VALUES (?, ?, ?)", rows)
            rows.clear()


def copies(conn: apsw.Connection, session_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Of ``session_ids`` (every session when None), each copy -> the session that counts.

    A session missing from the answer counts as itself. Deterministic: it reads only the
    projections, and every tie is broken by log order, start time and id.
    """
    if session_ids is None:
        # Only a session sharing an id with another can be a copy: those, found by the index.
        wanted = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT a.session_id FROM p_session_keys a"
                " JOIN p_session_keys b ON b.key = a.key AND b.session_id != a.session_id"
                " ORDER BY a.session_id"
            )
        ]
    else:
        wanted = sorted(set(session_ids))
    if not wanted:
        return {}
    ids = _json.encode(wanted).decode()
    # Every session (still derived) holding a key of a wanted one, with how many of each
    # wanted session's keys it holds.
    shared: dict[str, dict[str, int]] = {}
    for mine, other, n in conn.execute(
        "SELECT a.session_id, b.session_id, count(DISTINCT a.key)"
        " FROM p_session_keys a JOIN p_session_keys b ON b.key = a.key"
        " JOIN p_sessions s ON s.session_id = b.session_id"
        " WHERE a.session_id IN (SELECT value FROM json_each(?))"
        " GROUP BY a.session_id, b.session_id",
        (ids,),
    ):
        shared.setdefault(mine, {})[other] = int(n)
    holders = sorted({other for found in shared.values() for other in found})
    rank: dict[str, tuple[int, int, str, str]] = {}
    for sid, keys, first, started in conn.execute(
        "SELECT k.session_id, count(DISTINCT k.key), coalesce(f.position, 0),"
        " coalesce(s.started_at, '')"
        " FROM p_session_keys k JOIN p_sessions s ON s.session_id = k.session_id"
        " LEFT JOIN p_session_first f ON f.session_id = k.session_id"
        " WHERE k.session_id IN (SELECT value FROM json_each(?)) GROUP BY k.session_id",
        (_json.encode(holders).decode(),),
    ):
        rank[sid] = (-int(keys), int(first), str(started), sid)
    out: dict[str, str] = {}
    for sid in wanted:
        found = shared.get(sid)
        if not found or sid not in found:
            continue  # no keys (or not derived): nothing says it is a copy
        mine = found[sid]
        # Every session holding all of this one's keys (itself included): the first by rank
        # is the conversation; it holds all their keys too, so it picks itself.
        containing = [other for other, n in found.items() if n == mine and other in rank]
        best = min(containing, key=lambda other: rank[other])
        if best != sid:
            out[sid] = best
    return out
