"""Reading the sessions projection: typed views for ``sessions``, ``session show`` and export."""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from ..events import events_at
from ..events._db import scalar
from ..events.types import AttributeValue, SpanDerived
from .skill_aliases import names_of
from .usage import SessionCost


class Outcomes(msgspec.Struct):
    success: int
    failure: int
    blocked: int
    unknown: int


class Tokens(msgspec.Struct):
    input: int | None
    output: int | None
    cache_read: int | None
    cache_creation: int | None
    # What the figures cover when not every response's own full usage (SessionDerived).
    note: str | None = None


class SessionView(msgspec.Struct):
    """One session as ``sessions --json`` prints it."""

    session_id: str
    agent: str
    native_session_id: str
    title: str | None
    cwd: str | None
    started_at: str | None
    ended_at: str | None
    turns: int
    tools: int
    skills: list[str]
    outcomes: Outcomes
    verdict: str | None
    tokens: Tokens
    deriver_version: int
    parent_session_id: str | None
    # Why the verdict is what it is (one line) and the spans that decided it; none for success.
    verdict_reason: str | None = None
    verdict_spans: list[str] = []
    # The newest unretracted human label, beside (never merged into) the verdict.
    label: str | None = None
    # USD over the session's priced model responses (the usage projection); None: none priced.
    cost: SessionCost | None = None
    # The session that counts when this one is a copy of it (the same responses: resumed,
    # forked or copied; projections.copies): listed as it is, counted once by skill figures.
    copy_of: str | None = None
    # Team views only (``--team``): the machine the session came from, its label and id.
    machine: str | None = None
    machine_id: str | None = None


class SpanView(msgspec.Struct):
    """One span as ``session show --json`` and ``export jsonl`` print it."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    kind: str
    name: str
    start: str | None
    end: str | None
    outcome: str | None
    attributes: dict[str, AttributeValue]
    session_id: str


_SESSION_COLUMNS = (
    "session_id, agent, native_session_id, title, cwd, started_at, ended_at, turns, tools,"
    " skills, success, failure, blocked, unknown, verdict, tokens_input, tokens_output,"
    " tokens_cache_read, tokens_cache_creation, tokens_note, deriver_version, parent_session_id,"
    " verdict_reason, verdict_spans"
)
_json = msgspec.json.Decoder()


def _session(row: tuple[Any, ...]) -> SessionView:
    (
        sid,
        agent,
        native,
        title,
        cwd,
        started,
        ended,
        turns,
        tools,
        skills,
        s,
        f,
        b,
        u,
        verdict,
        t_in,
        t_out,
        t_read,
        t_create,
        t_note,
        version,
        parent,
        reason,
        deciding,
    ) = row
    return SessionView(
        session_id=sid,
        agent=agent,
        native_session_id=native,
        title=title,
        cwd=cwd,
        started_at=started,
        ended_at=ended,
        turns=turns,
        tools=tools,
        skills=_json.decode(skills),
        outcomes=Outcomes(success=s, failure=f, blocked=b, unknown=u),
        verdict=verdict,
        tokens=Tokens(
            input=t_in, output=t_out, cache_read=t_read, cache_creation=t_create, note=t_note
        ),
        deriver_version=version,
        parent_session_id=parent,
        verdict_reason=reason,
        verdict_spans=_json.decode(deciding) if deciding else [],
    )


class SessionFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which sessions ``sessions`` lists (``since`` inclusive, ``until`` exclusive).

    ``search`` keeps sessions whose title or a prompt contains it (case-insensitive for ASCII
    letters, as SQLite's LIKE is).
    """

    agent: str | None = None
    skill: str | None = None
    verdict: str | None = None
    since: str | None = None
    until: str | None = None
    search: str | None = None

    def where(self, conn: apsw.Connection) -> tuple[str, list[object]]:
        """The SQL condition on ``p_sessions`` and its arguments."""
        where: list[str] = []
        args: list[object] = []
        if self.search:
            pattern = "%" + _escape_like(self.search) + "%"
            where.append(
                "(title LIKE ? ESCAPE '\\' OR session_id IN (SELECT session_id FROM p_spans"
                " WHERE kind = 'CHAIN' AND json_extract(attributes, '$.\"gen_ai.prompt\"')"
                " LIKE ? ESCAPE '\\'))"
            )
            args += [pattern, pattern]
        if self.agent:
            where.append("agent = ?")
            args.append(self.agent)
        if self.skill:
            names = names_of(conn, self.skill)  # the skill under every name it was loaded by
            marks = ", ".join("?" for _ in names)
            where.append(
                f"session_id IN (SELECT session_id FROM p_session_skills WHERE skill IN ({marks}))"
            )
            args.extend(names)
        if self.verdict == "none":
            where.append("verdict IS NULL")
        elif self.verdict:
            where.append("verdict = ?")
            args.append(self.verdict)
        if self.since:
            where.append("started_at >= ?")
            args.append(self.since)
        if self.until:
            where.append("started_at < ?")
            args.append(self.until)
        return (" WHERE " + " AND ".join(where) if where else ""), args


def list_sessions(
    conn: apsw.Connection,
    *,
    agent: str | None = None,
    skill: str | None = None,
    verdict: str | None = None,
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[SessionView]:
    """Sessions, newest first, filtered as :class:`SessionFilter` says (``limit`` from
    ``offset``)."""
    chosen = SessionFilter(
        agent=agent, skill=skill, verdict=verdict, since=since, until=until, search=search
    )
    where, args = chosen.where(conn)
    sql = f"SELECT {_SESSION_COLUMNS} FROM p_sessions{where} ORDER BY started_at DESC, session_id"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
    return [_session(r) for r in conn.execute(sql, args)]


def count_sessions(conn: apsw.Connection, chosen: SessionFilter) -> int:
    """How many sessions :func:`list_sessions` lists under ``chosen`` without a limit."""
    where, args = chosen.where(conn)
    return int(scalar(conn, f"SELECT count(*) FROM p_sessions{where}", tuple(args)))


def find_session(conn: apsw.Connection, ident: str) -> SessionView | None:
    """A session by our id, the agent's native id, or a unique prefix of either.

    A thread merged into another session (a Codex child) finds the session it is part of.
    None when nothing matches or a prefix matches several (see :func:`session_candidates`).
    """
    found = session_candidates(conn, ident, limit=2)
    return found[0] if len(found) == 1 else None


MIN_PREFIX = 6


def session_candidates(conn: apsw.Connection, ident: str, limit: int = 5) -> list[SessionView]:
    """Sessions ``ident`` may name: the exact match, else up to ``limit`` prefix matches.

    Prefixes shorter than :data:`MIN_PREFIX` characters match nothing.
    """
    merged = conn.execute(
        "SELECT merged_into FROM p_merged WHERE session_id = ? OR native_session_id = ?",
        (ident, ident),
    ).fetchone()
    if merged is not None:
        ident = merged[0]
    sql = f"SELECT {_SESSION_COLUMNS} FROM p_sessions WHERE session_id = ? OR native_session_id = ?"
    rows = conn.execute(sql, (ident, ident)).fetchall()
    if not rows and len(ident) >= MIN_PREFIX:
        rows = conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM p_sessions WHERE session_id LIKE ? ESCAPE '\\'"
            " OR native_session_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC, session_id"
            " LIMIT ?",
            (_prefix(ident), _prefix(ident), limit),
        ).fetchall()
    return [_session(r) for r in rows[:limit]]


def count_prefix_matches(conn: apsw.Connection, ident: str) -> int:
    """How many sessions' ids (ours or the agent's) start with ``ident``."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM p_sessions WHERE session_id LIKE ? ESCAPE '\\'"
            " OR native_session_id LIKE ? ESCAPE '\\'",
            (_prefix(ident), _prefix(ident)),
        )
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(ident: str) -> str:
    return _escape_like(ident) + "%"


def spans_of(conn: apsw.Connection, session_id: str) -> list[SpanView]:
    """A session's spans in the deriver's order, with every attribute."""
    rows: list[tuple[Any, ...]] = conn.execute(
        'SELECT span_id, parent_span_id, kind, name, start, "end", outcome, position,'
        " attributes FROM p_spans WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    # p_spans keeps only what queries read (see sessions.QUERIED_ATTRIBUTES): the rest,
    # trace id included, is read back from each span's event.
    stored = events_at(conn, [r[7] for r in rows])
    spans = []
    for span_id, parent, kind, name, start, end, outcome, position, queried in rows:
        event = stored.get(position)
        if not isinstance(event, SpanDerived):  # erased under a live projection: what is kept
            event = None
        spans.append(
            SpanView(
                span_id=span_id,
                trace_id=event.trace_id if event else "",
                parent_span_id=parent,
                kind=kind,
                name=name,
                start=start,
                end=end,
                outcome=outcome,
                attributes=event.attributes if event else _json.decode(queried or "{}"),
                session_id=session_id,
            )
        )
    return spans


class StoredPolicy(msgspec.Struct):
    """A policy's values as last set, and the log position of that ``PolicySet``."""

    name: str
    values: dict[str, Any]
    position: int | None


def stored_policy(conn: apsw.Connection, name: str) -> StoredPolicy | None:
    """The values last recorded for policy ``name`` (None if it was never set)."""
    row = conn.execute(
        'SELECT "values", position FROM p_policies WHERE name = ?', (name,)
    ).fetchone()
    if row is None:
        return None
    values = _json.decode(row[0])
    return StoredPolicy(
        name=name, values=values if isinstance(values, dict) else {}, position=row[1]
    )


class ForgottenView(msgspec.Struct):
    """One erasure of a session's derivation (``forget``, retention), as its tombstone."""

    session_id: str
    position: int
    forgotten_at: str
    author: str
    reason: str
    scope: str
    events: int


_FORGOTTEN_COLUMNS = "session_id, position, forgotten_at, author, reason, scope, events"


def _forgotten(row: tuple[Any, ...]) -> ForgottenView:
    return ForgottenView(*row)


def forgotten_sessions(conn: apsw.Connection, *, hidden_only: bool = False) -> list[ForgottenView]:
    """Every tombstone, newest first; ``hidden_only``: of sessions with no rows left."""
    sql = f"SELECT {_FORGOTTEN_COLUMNS} FROM p_forgotten"
    if hidden_only:
        sql += " WHERE session_id NOT IN (SELECT session_id FROM p_sessions)"
    sql += " ORDER BY position DESC, session_id"
    return [_forgotten(r) for r in conn.execute(sql)]


def forgotten_of(conn: apsw.Connection, candidates: list[str]) -> list[ForgottenView]:
    """The tombstones of the first of ``candidates`` (session ids) that has any, newest first.

    An id shorter than a full session id is taken as a prefix and must match one session.
    """
    for ident in candidates:
        rows = conn.execute(
            f"SELECT {_FORGOTTEN_COLUMNS} FROM p_forgotten WHERE session_id = ?"
            " ORDER BY position DESC",
            (ident,),
        ).fetchall()
        if not rows and len(ident) >= 6:
            rows = conn.execute(
                f"SELECT {_FORGOTTEN_COLUMNS} FROM p_forgotten WHERE session_id LIKE ?"
                " ESCAPE '\\' ORDER BY position DESC",
                (_prefix(ident),),
            ).fetchall()
            if len({r[0] for r in rows}) != 1:
                rows = []
        if rows:
            return [_forgotten(r) for r in rows]
    return []
