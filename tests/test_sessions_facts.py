"""The sessions projection reads its spans' facts in Python exactly as ``json_extract`` read
them (the reference below is the code it replaced: three queries a session, a dozen
``json_extract`` a span), and orders spans the same whether their SessionDerived is folded
with them or in a later chunk (rowids included, which break ties of order)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import Event, SessionDerived, SessionPurged, SpanDerived
from skillopsd.projections import ProjectionEngine, Sessions
from skillopsd.projections.sessions import _SCHEMA, _loads, _session_end, _spans_of
from skillopsd.projections.verdict import USER_STOPS, Call, SessionEnd

# --- the reference: the facts as SQL read them ----------------------------------------------

_FACTS = (
    "skillops.turns_from_end",
    "skillops.resolved",
    "skillops.call.probe",
    "skillops.call.noop",
    "skillops.call.sandboxed",
    "skillops.call.bookkeeping",
    "skillops.call.pending",
    "skillops.call.what",
    "skillops.call.why",
    "skillops.call.turn",
    "skillops.call.narrower",
    "skillops.result.masked",
)


def _attribute(name: str) -> str:
    return f"json_extract(attributes, '$.\"{name}\"')"


def end_in_sql(conn: apsw.Connection, sid: str) -> tuple[SessionEnd, dict[str, int]]:
    counts = {"success": 0, "failure": 0, "blocked": 0, "unknown": 0}
    calls: list[tuple[str, int, Call]] = []
    facts = ", ".join(_attribute(name) for name in _FACTS)
    for span_id, outcome, start, seq, *values in conn.execute(
        f"SELECT span_id, outcome, coalesce(start, ''), seq, {facts} FROM p_spans"
        " WHERE session_id = ? AND kind IN ('TOOL', 'SKILL')",
        (sid,),
    ):
        (from_end, resolved, probe, noop, sandboxed, bookkeeping, pending) = values[:7]
        (what, why, turn, narrower, masked) = values[7:]
        counts[str(outcome) if outcome else "unknown"] += 1
        unknown = outcome is None and masked is not None
        if outcome is None and not pending and not unknown:
            continue
        call = Call(
            span_id=str(span_id),
            outcome=str(outcome) if outcome else None,
            turns_from_end=from_end if isinstance(from_end, int) else None,
            resolved=bool(resolved),
            harmless=bool(probe) or bool(noop) or bool(sandboxed),
            bookkeeping=bool(bookkeeping),
            pending=bool(pending),
            what=str(what or ""),
            why=str(why or ""),
            turn=turn if isinstance(turn, int) else None,
            narrower=str(narrower or ""),
            unknown=unknown,
        )
        calls.append((str(start), int(seq), call))
    calls.sort(key=lambda c: (c[0], c[1]))
    last_turn = conn.execute(
        f"SELECT span_id, {_attribute('skillops.turn.aborted')},"
        f" {_attribute('skillops.turn.end')}, {_attribute('skillops.turn.number')},"
        f" {_attribute('skillops.turn.api_error')} FROM p_spans"
        " WHERE session_id = ? AND kind = 'CHAIN' AND parent_span_id IS NULL"
        f" AND {_attribute('skillops.turn.end')} IS NOT NULL"
        " ORDER BY coalesce(start, '') DESC, seq DESC LIMIT 1",
        (sid,),
    ).fetchone()
    worked = any(
        c.turns_from_end == 0 and (c.outcome is not None or c.unknown) for _s, _q, c in calls
    )
    interrupted = worked and last_turn is not None and last_turn[1] in USER_STOPS
    aborted = last_turn is not None and last_turn[1] is not None
    end = SessionEnd(
        calls=[c for _s, _q, c in calls],
        last_turn=last_turn[3] if last_turn is not None and isinstance(last_turn[3], int) else None,
        last_turn_span=str(last_turn[0]) if last_turn is not None else None,
        interrupted=interrupted,
        api_error=last_turn is not None and bool(last_turn[4]),
        end=None if aborted or last_turn is None else last_turn[2],
    )
    return end, counts


def loads_in_sql(conn: apsw.Connection, sid: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = conn.execute(
        "SELECT kind, start, tokens, json_extract(attributes, '$.\"skill.name\"'),"
        " json_extract(attributes, '$.\"skill.content_hash\"'), seq, span_id FROM p_spans"
        " WHERE session_id = ? AND kind IN ('SKILL', 'TOOL', 'LLM')",
        (sid,),
    ).fetchall()
    first: dict[str, str | None] = {}
    named: dict[str, tuple[int, str, object]] = {}
    for kind, start, _tokens, name, digest, seq, span_id in rows:
        if kind != "SKILL" or not isinstance(name, str):
            continue
        at = first.setdefault(name, None)
        if start is not None and (at is None or start < at):
            first[name] = start
        if digest is not None and (name not in named or (seq, span_id) > named[name][:2]):
            named[name] = (seq, span_id, digest)
    out = []
    for name, at in sorted(first.items()):
        calls: int | None = None
        tokens: int | None = None
        if at is not None:
            after = [(k, used) for k, start, used, *_ in rows if start is not None and start >= at]
            calls = sum(1 for k, _used in after if k == "TOOL")
            counted = [used for k, used in after if k == "LLM" and used is not None]
            tokens = sum(counted) if counted else None
        seq, _span, digest = named.get(name, (None, None, None))
        out.append((sid, name, at, digest, seq, calls, tokens))
    return out


# --- spans with every kind of value an attribute can hold ----------------------------------

# A fact's values: true/false (json_extract: 1/0), lists (their JSON text; an empty one is
# not false), numbers beyond 64 bits (a float), floats, text, null.
VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    2**63 + 5,
    2**64 - 1,
    1.5,
    "",
    "0",
    'x\n"é',
    "interrupted",
    "cancelled",
    "answered",
    "pending",
    [],
    ["a", "b"],
    ["é\n"],
)
KEYS = (
    *_FACTS,
    "skillops.turn.aborted",
    "skillops.turn.end",
    "skillops.turn.number",
    "skillops.turn.api_error",
    "skill.name",
    "skill.content_hash",
)


def _random_spans(conn: apsw.Connection, rng: random.Random, sids: list[str]) -> None:
    conn.execute("DELETE FROM p_spans")
    for n in range(rng.randrange(0, 80)):
        attributes = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randrange(0, 9))}
        if rng.random() < 0.3:
            attributes["skillops.turn.end"] = rng.choice(("answered", "pending", None, True))
        if rng.random() < 0.3:
            attributes["skill.name"] = rng.choice(("tidy", "lint", ["tidy"], True, 3))
        text = msgspec.json.encode(attributes).decode() if attributes else None
        conn.execute(
            "INSERT INTO p_spans (span_id, session_id, parent_span_id, kind, name, start,"
            " attributes, deriver_version, seq, position, tokens, outcome)"
            " VALUES (?, ?, ?, ?, 'n', ?, ?, 1, ?, ?, ?, ?)",
            (
                f"span-{rng.randrange(10**9)}",
                rng.choice(sids),
                rng.choice((None, None, "parent")),
                rng.choice(("CHAIN", "TOOL", "SKILL", "LLM", "AGENT")),
                rng.choice((None, "", "2026-01-01", "2026-01-02")),
                text,
                # Many spans not ordered yet (the same seq): ties broken by index order.
                rng.choice((1_000_000_000, 1_000_000_000, rng.randrange(1, 6))),
                n,
                rng.choice((None, 5, 100)),
                rng.choice((None, None, "success", "failure", "blocked")),
            ),
        )


@pytest.mark.parametrize("seed", range(4))
def test_facts_read_in_python_equal_json_extract(seed: int) -> None:
    rng = random.Random(seed)
    conn = apsw.Connection(":memory:")
    conn.execute(_SCHEMA)
    decided = loaded = 0
    for _ in range(150):
        _random_spans(conn, rng, ["s1", "s2"])
        for sid in ("s1", "s2"):
            new, old = _session_end(conn, sid), end_in_sql(conn, sid)
            # repr: 1 and True, "[]" and [] differ
            assert repr(msgspec.to_builtins(new)) == repr(msgspec.to_builtins(old))
            decided += bool(old[0].calls) + (old[0].last_turn_span is not None)
            _loads(conn, sid, _spans_of(conn, sid))
            rows = conn.execute(
                "SELECT * FROM p_skill_loads WHERE session_id = ? ORDER BY skill", (sid,)
            ).fetchall()
            assert repr(rows) == repr(loads_in_sql(conn, sid))
            loaded += len(rows)
    assert decided > 100 and loaded > 50  # the draw has calls, last turns and loads


# --- spans ordered as they are written, or later --------------------------------------------


def _span(rng: random.Random, sid: str, n: int) -> SpanDerived:
    kind = rng.choice(("CHAIN", "TOOL", "TOOL", "LLM", "SKILL"))
    attributes: dict[str, Any] = {k: rng.choice(VALUES[:14]) for k in rng.sample(KEYS, 3)}
    return SpanDerived(
        session_id=sid,
        deriver_version=1,
        span_id=f"{sid}-{rng.randrange(20)}" if rng.random() < 0.3 else f"{sid}-{n}",
        trace_id=sid,
        parent_span_id=rng.choice((None, None, "parent")),
        kind=kind,  # type: ignore[arg-type]
        name=kind.lower(),
        start=rng.choice((None, "2026-01-01", "2026-01-02", "2026-01-03")),
        outcome=rng.choice((None, "success", "failure", "blocked")) if kind == "TOOL" else None,
        attributes=attributes,
    )


def _log(seed: int) -> list[list[NewEvent]]:
    """Derivations and derivations again (spans kept, changed, dropped, listed twice),
    merges and purges."""
    rng = random.Random(seed)
    batches = []
    for i in range(80):
        sid = f"s{rng.randrange(20)}"
        spans = [_span(rng, sid, n) for n in range(rng.randrange(0, 12))]
        ids = [s.span_id for s in spans if rng.random() < 0.9]
        ids += [f"{sid}-{n}" for n in range(rng.randrange(3))]  # kept from before
        if ids and rng.random() < 0.1:
            ids.append(ids[0])
        events: list[Event] = [*spans]
        roll = rng.random()
        if roll < 0.02:
            events.append(SessionPurged(session_id=sid))
        elif roll < 0.9:
            events.append(
                SessionDerived(
                    session_id=sid,
                    agent="claude",
                    native_session_id=sid,
                    deriver_version=1,
                    span_ids=ids,
                    merged_into="s0" if roll < 0.05 else None,
                )
            )
        batches.append([NewEvent(f"session:{sid}:{i}", e) for e in events])
    return batches


def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.read() as conn:
        return {
            table: conn.execute(f'SELECT rowid, * FROM "{table}" ORDER BY 1').fetchall()
            for table in ("p_spans", "p_sessions")
        }


@pytest.mark.parametrize("seed", range(4))
def test_spans_ordered_as_written_equal_ordered_later(tmp_path: Path, seed: int) -> None:
    db = Database.open(tmp_path / "p.db")
    log = EventLog(db)
    for batch in _log(seed):
        log.append(batch)
    engine = ProjectionEngine(db, [Sessions()])
    engine.catch_up(chunk=1)  # every SessionDerived folded apart from its spans
    later = _tables(db)
    engine.rebuild()  # each with its spans: ordered as they are written
    assert _tables(db) == later
    assert len(later["p_spans"]) > 50
    assert any(row[11] != 1_000_000_000 for row in later["p_spans"])  # seq: ordered ones
    db.close()
