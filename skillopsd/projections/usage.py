"""Every model response with reported tokens, and its cost (the ``usage`` projection).

One row per ``LLM`` span that reported tokens, in step with the sessions projection (a newer
derivation's span set replaces the older one; merged, purged and forgotten sessions go), with
its price from :mod:`skillopsd.pricing`. The price table is code: this projection's version
includes the genai-prices version, so installing another one drops the table and prices
every response again from the log (the engine's replay, like a rebuild of this projection
only), and two rebuilds with one library give the same digest.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import PayloadsErased, SessionDerived, SessionPurged, SpanDerived
from ..pricing import CACHE_WRITE_1H, PRICES_VERSION, REASONING_TOKENS, PriceArgs, Tokens, price
from ..pricing.report import UsageRecord
from ._engine import Projection
from ._spans import delete_stale
from .copies import copies

# Set by the Claude deriver on a subagent's final response read from its Task result.
USAGE_SOURCE = "skillops.usage.source"

_json = msgspec.json.Encoder()
_SCHEMA = """
CREATE TABLE p_usage (
    span_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, at TEXT, model TEXT, system TEXT,
    response_id TEXT, input INTEGER, output INTEGER, cache_read INTEGER, cache_write INTEGER,
    cache_write_1h INTEGER, usd REAL, priced_as TEXT, missing TEXT, source TEXT,
    reasoning INTEGER
);
CREATE INDEX p_usage_by_session ON p_usage (session_id);
CREATE INDEX p_usage_by_at ON p_usage (at);
CREATE TABLE p_usage_purged (session_id TEXT PRIMARY KEY);
"""


def _serial(text: str) -> int:
    """``0.2.3`` -> 20003: a version string as a number the engine compares."""
    parts = [int(p) if p.isdigit() else 0 for p in text.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return min(parts[0], 99) * 1_000_000 + min(parts[1], 99) * 10_000 + min(parts[2], 9_999)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def price_args(span: SpanDerived) -> PriceArgs | None:
    """The arguments :func:`usage_row` prices one LLM span with (None: it has no price to
    look up: no tokens, or no model, or no time)."""
    a = span.attributes
    inp = _count(a.get("gen_ai.usage.input_tokens"))
    out = _count(a.get("gen_ai.usage.output_tokens"))
    model = a.get("gen_ai.request.model")
    at = span.end or span.start
    if inp is None or out is None or not isinstance(model, str) or not model or not at:
        return None
    system = a.get("gen_ai.system")
    tokens = Tokens(
        input=inp,
        output=out,
        cache_read=_count(a.get("gen_ai.usage.cache_read.input_tokens")) or 0,
        cache_write=_count(a.get("gen_ai.usage.cache_creation.input_tokens")) or 0,
        cache_write_1h=_count(a.get(CACHE_WRITE_1H)) or 0,
    )
    return model, system if isinstance(system, str) else None, at, tokens


def usage_row(span: SpanDerived) -> tuple[object, ...] | None:
    """The row of one LLM span, or None when it reported no tokens."""
    a = span.attributes
    inp = _count(a.get("gen_ai.usage.input_tokens"))
    out = _count(a.get("gen_ai.usage.output_tokens"))
    if inp is None and out is None:
        return None
    read = _count(a.get("gen_ai.usage.cache_read.input_tokens"))
    write = _count(a.get("gen_ai.usage.cache_creation.input_tokens"))
    hour = _count(a.get(CACHE_WRITE_1H))
    reasoning = _count(a.get(REASONING_TOKENS))
    model = a.get("gen_ai.request.model")
    model = model if isinstance(model, str) else None
    system = a.get("gen_ai.system")
    system = system if isinstance(system, str) else None
    response = a.get("gen_ai.response.id")
    source = a.get(USAGE_SOURCE)
    at = span.end or span.start
    usd: float | None = None
    priced_as: str | None = None
    missing: str | None
    if inp is None or out is None:
        missing = "tokens"
    elif not model:
        missing = "model"
    else:
        args = price_args(span)
        priced = price(*args) if args is not None else None
        missing = None if priced is not None else "price"
        if priced is not None:
            usd, priced_as = priced.usd, f"{priced.provider}:{priced.model}"
    return (
        span.span_id,
        span.session_id,
        at,
        model,
        system,
        response if isinstance(response, str) else None,
        inp,
        out,
        read,
        write,
        hour,
        usd,
        priced_as,
        missing,
        source if isinstance(source, str) else None,
        reasoning,
    )


class Usage(Projection):
    """The table ``usage``, the cost columns and ``status``'s unpriced models read."""

    name = "usage"
    # 2.1: the thinking part of a response's output (``reasoning``), apart.
    version = 2_100_000_000 + _serial(PRICES_VERSION)
    tables = ("p_usage", "p_usage_purged")
    handles = frozenset({"SessionDerived", "SpanDerived", "SessionPurged", "PayloadsErased"})

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        self.apply_many(conn, [event])

    def apply_many(self, conn: apsw.Connection, events: list[RecordedEvent]) -> None:
        purged = {r[0] for r in conn.execute("SELECT session_id FROM p_usage_purged")}
        rows: list[tuple[object, ...]] = []
        for event in events:
            payload = event.payload
            if isinstance(payload, SpanDerived):
                if payload.kind == "LLM" and payload.session_id not in purged:
                    row = usage_row(payload)
                    if row is not None:
                        rows.append(row)
                    else:  # a newer derivation of a span that no longer reports tokens
                        self._write(conn, rows)
                        conn.execute("DELETE FROM p_usage WHERE span_id = ?", (payload.span_id,))
                continue
            self._write(conn, rows)
            if isinstance(payload, SessionDerived):
                if payload.merged_into is not None:
                    conn.execute("DELETE FROM p_usage WHERE session_id = ?", (payload.session_id,))
                else:
                    delete_stale(conn, "p_usage", payload.session_id, set(payload.span_ids))
            elif isinstance(payload, SessionPurged):
                purged.add(payload.session_id)
                conn.execute(
                    "INSERT OR IGNORE INTO p_usage_purged VALUES (?)", (payload.session_id,)
                )
                conn.execute("DELETE FROM p_usage WHERE session_id = ?", (payload.session_id,))
            elif isinstance(payload, PayloadsErased):
                for session_id in sorted(set(payload.session_ids)):
                    conn.execute("DELETE FROM p_usage WHERE session_id = ?", (session_id,))
        self._write(conn, rows)

    @staticmethod
    def _write(conn: apsw.Connection, rows: list[tuple[object, ...]]) -> None:
        if rows:
            conn.executemany(
                f"INSERT OR REPLACE INTO p_usage VALUES ({', '.join('?' * 16)})",
                rows,
            )
            rows.clear()


def usage_records(
    conn: apsw.Connection,
    *,
    agent: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[UsageRecord]:
    """Every response the transcripts hold (``since``/``until``: stored UTC bounds on its time).

    A subagent's final response known only from its Task result (its own transcript was not
    kept) is in its session's cost, not here: a report counts, as ccusage does, the
    responses written as records, and that usage was never one.
    """
    where = ["u.source IS NULL"]
    args: list[object] = []
    if agent is not None:
        where.append("s.agent = ?")
        args.append(agent)
    if since is not None:
        where.append("u.at >= ?")
        args.append(since)
    if until is not None:
        where.append("u.at < ?")
        args.append(until)
    skills: dict[str, list[str]] = {}
    for sid, skill in conn.execute(
        "SELECT session_id, skill FROM p_session_skills ORDER BY session_id, skill"
    ):
        skills.setdefault(sid, []).append(skill)
    out: list[UsageRecord] = []
    copied = copies(conn)
    for row in conn.execute(
        "SELECT u.span_id, u.at, s.agent, u.session_id, s.native_session_id, s.cwd, u.model,"
        " u.system, u.response_id, coalesce(u.input, 0), coalesce(u.output, 0),"
        " coalesce(u.cache_read, 0), coalesce(u.cache_write, 0), u.usd, coalesce(u.reasoning, 0)"
        " FROM p_usage u JOIN p_sessions s ON s.session_id = u.session_id"
        f" WHERE {' AND '.join(where)}",
        args,
    ):
        (span_id, at, ag, sid, native, cwd, model, system, rid, inp, out_, read, write, usd) = row[
            :14
        ]
        out.append(
            UsageRecord(
                span_id=span_id,
                at=at,
                agent=ag,
                session_id=sid,
                native_session_id=native,
                project=cwd,
                skills=tuple(skills.get(sid, ())),
                model=model,
                system=system,
                response_id=rid,
                input=inp,
                output=out_,
                cache_read=read,
                cache_write=write,
                usd=usd,
                reasoning=row[14],
                copy=sid in copied,
            )
        )
    return out


class SessionCost(msgspec.Struct, frozen=True):
    """A session's cost: the sum over its priced responses, and how many had no price."""

    usd: float | None
    unpriced: int
    responses: int


def session_costs(
    conn: apsw.Connection, session_ids: list[str] | None = None
) -> dict[str, SessionCost]:
    """Cost per session (every response of the session, copies of earlier ones included)."""
    sql = "SELECT session_id, sum(usd), sum(usd IS NULL), count(*) FROM p_usage"
    args: list[object] = []
    if session_ids is not None:
        sql += " WHERE session_id IN (SELECT value FROM json_each(?))"
        args.append(_json.encode(session_ids).decode())
    sql += " GROUP BY session_id"
    return {
        sid: SessionCost(usd=usd, unpriced=int(unpriced), responses=int(n))
        for sid, usd, unpriced, n in conn.execute(sql, args)
    }


def span_costs(
    conn: apsw.Connection, session_id: str
) -> dict[str, tuple[float | None, str | None]]:
    """Per LLM span of one session: its cost (None: no price) and why it has none."""
    return {
        span_id: (usd, missing)
        for span_id, usd, missing in conn.execute(
            "SELECT span_id, usd, missing FROM p_usage WHERE session_id = ?", (session_id,)
        )
    }


class Unpriced(msgspec.Struct, frozen=True):
    """A model whose responses have no price, and how many."""

    model: str
    system: str | None
    responses: int
    reason: str


def unpriced_models(conn: apsw.Connection) -> list[Unpriced]:
    """Models with responses the price table could not price (``status`` lists them)."""
    return [
        Unpriced(model=model or "(none)", system=system, responses=int(n), reason=reason)
        for model, system, reason, n in conn.execute(
            "SELECT model, system, missing, count(*) FROM p_usage WHERE usd IS NULL"
            " GROUP BY model, system, missing ORDER BY count(*) DESC, model"
        )
    ]
