"""Who is a copy of whom (projections.copies), over any sessions and ids: the class, not the
sample. The end-to-end stories are in test_session_copies.py."""

from __future__ import annotations

import apsw
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.events.types import SpanDerived
from skillopsd.projections.copies import SessionKeys, copies, span_key
from skillopsd.projections.sessions import Sessions

# Up to 7 sessions, each with a set of ids drawn from 6 (so subsets and equal sets are common),
# a start time from 3 and a derivation position.
_SESSIONS = st.lists(
    st.tuples(st.frozensets(st.sampled_from("abcdef"), max_size=6), st.sampled_from("xyz")),
    min_size=1,
    max_size=7,
)


def _tables(sessions: list[tuple[frozenset[str], str]]) -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    Sessions().create(conn)
    SessionKeys().create(conn)
    for n, (keys, started) in enumerate(sessions):
        sid = f"s{n}"
        conn.execute(
            "INSERT INTO p_sessions (session_id, agent, native_session_id, started_at, turns,"
            " tools, skills, deriver_version, derived_at_position)"
            " VALUES (?, 'claude', ?, ?, 1, 0, '[]', 1, ?)",
            (sid, sid, started, n),
        )
        conn.execute("INSERT INTO p_session_first VALUES (?, ?)", (sid, 100 - n))
        for key in sorted(keys):
            conn.execute(
                "INSERT INTO p_session_keys VALUES (?, ?, ?)", (f"{sid}:{key}", sid, f"call:{key}")
            )
    return conn


@given(_SESSIONS)
def test_a_copy_is_held_whole_by_the_one_that_counts(
    sessions: list[tuple[frozenset[str], str]],
) -> None:
    conn = _tables(sessions)
    keys = {f"s{n}": k for n, (k, _) in enumerate(sessions)}
    found = copies(conn)
    for sid, mine in keys.items():
        larger = [o for o, theirs in keys.items() if o != sid and mine and mine < theirs]
        equal = [o for o, theirs in keys.items() if o != sid and mine and mine == theirs]
        if not mine:
            assert sid not in found  # no ids: nothing says it is a copy
        elif larger:
            assert sid in found  # a continuation holds it: the earlier part never counts
        elif not equal:
            assert sid not in found  # held by no other session: a conversation of its own
        if sid in found:
            target = found[sid]
            assert target != sid and mine <= keys[target]
            assert target not in found  # the one that counts counts
    # Of sessions with one same set of ids, held by no larger one, exactly one counts.
    for mine in {k for k in keys.values() if k}:
        if any(mine < theirs for theirs in keys.values()):
            continue
        group = [s for s, k in keys.items() if k == mine]
        assert sum(s not in found for s in group) == 1
    # Asking about some sessions answers as asking about all.
    some = sorted(keys)[::2]
    assert copies(conn, some) == {s: t for s, t in found.items() if s in some}


def test_the_original_counts_whatever_start_a_copy_claims() -> None:
    # s0 was derived first (position 100); a copy s1 claims an earlier start: s0 still counts.
    conn = _tables([(frozenset("ab"), "y"), (frozenset("ab"), "x")])
    conn.execute("UPDATE p_session_first SET position = 1 WHERE session_id = 's0'")
    assert copies(conn) == {"s1": "s0"}


def test_keys_are_the_ids_an_agent_gave() -> None:
    def span(kind: str, **attributes: object) -> SpanDerived:
        return SpanDerived(
            session_id="s",
            span_id="x",
            trace_id="t",
            parent_span_id=None,
            kind=kind,  # type: ignore[arg-type]
            name="n",
            start=None,
            end=None,
            attributes=attributes,  # type: ignore[arg-type]
            deriver_version=1,
        )

    assert span_key(span("LLM", **{"gen_ai.response.id": "msg_1", "gen_ai.system": "anthropic"}))
    assert span_key(span("LLM")) is None
    assert span_key(span("TOOL", **{"gen_ai.tool.call.id": "toolu_1"})) == "call:toolu_1"
    assert span_key(span("SKILL", **{"gen_ai.tool.call.id": "toolu_2"})) == "call:toolu_2"
    assert span_key(span("CHAIN", **{"gen_ai.tool.call.id": "toolu_3"})) is None
    assert span_key(span("TOOL", **{"gen_ai.tool.call.id": ""})) is None
