"""``skill show``'s per-load figures from the projection (p_skill_loads, p_spans.tokens) are
exactly what it computed from the spans before (the reference below is that code: it decoded
every model-call span of every session after the skill's first load), on generated sessions
that load the skill under two names, several versions, at unknown times, re-derived, merged
and purged; and the projection folded in small increments equals its rebuild."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from skillopsd.events import Database, EventLog, NewEvent, events_at
from skillopsd.events.types import (
    Event,
    SessionDerived,
    SessionPurged,
    SkillVersionCreated,
    SpanDerived,
    TokenUsage,
)
from skillopsd.projections import ProjectionEngine, default_projections, skill_views
from skillopsd.projections.skill_views import SkillLoad, skill_report

H1, H2, H3 = ("a" * 64, "b" * 64, "c" * 64)
# "acme:tidy" loaded a body "tidy" loaded too: one skill under two names (skill_aliases).
VERSIONS = (("tidy", H1, 1), ("tidy", H2, 2), ("acme:tidy", H2, 1), ("other", H3, 1))
NAMES: tuple[object, ...] = ("tidy", "tidy", "acme:tidy", "other", 7)  # 7: not a name
KINDS = ("SKILL", "TOOL", "TOOL", "LLM", "LLM", "CHAIN")


# --- the reference: skill show's figures as computed before the projection ----------------


def loads_from_spans(conn: apsw.Connection, names: list[str]) -> dict[str, SkillLoad]:
    """What skill_sessions and _scoped read from the spans before p_skill_loads (their code,
    gathered into SkillLoad): the hash the last SKILL span of any name named, the first load,
    and from there the TOOL spans counted and the LLM spans' payloads decoded for tokens."""
    marks = ", ".join("?" for _ in names)
    loaded: dict[str, str | None] = {}
    loaded_at: dict[str, str] = {}
    for sid, digest, start in conn.execute(
        "SELECT session_id, json_extract(attributes, '$.\"skill.content_hash\"'), start"
        " FROM p_spans"
        f" WHERE kind = 'SKILL' AND json_extract(attributes, '$.\"skill.name\"') IN ({marks})"
        " ORDER BY session_id, seq",
        names,
    ):
        if digest is not None or sid not in loaded:
            loaded[sid] = digest
        if start is not None and (sid not in loaded_at or start < loaded_at[sid]):
            loaded_at[sid] = start
    out: dict[str, SkillLoad] = {}
    for sid, digest in loaded.items():
        at = loaded_at.get(sid)
        if at is None:
            out[sid] = SkillLoad(None, digest, None, None)
            continue
        rows: list[tuple[Any, ...]] = conn.execute(
            "SELECT kind, position FROM p_spans WHERE session_id = ? AND start >= ?"
            " AND kind IN ('TOOL', 'LLM')",
            (sid, at),
        ).fetchall()
        calls = sum(1 for kind, _ in rows if kind == "TOOL")
        total: int | None = None
        for event in events_at(conn, [pos for kind, pos in rows if kind == "LLM"]).values():
            if not isinstance(event, SpanDerived):
                continue
            counted: list[int] = []
            for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
                used = event.attributes.get(key)
                if isinstance(used, int) and not isinstance(used, bool):
                    counted.append(used)
            if counted:
                total = (total or 0) + sum(counted)
        out[sid] = SkillLoad(at, digest, calls, total)
    return out


# --- generated sessions ------------------------------------------------------------------


def _time(rng: random.Random, day: int) -> str | None:
    if rng.random() < 0.1:
        return None  # a span the transcript gave no time
    # Few distinct times: spans at the very time of the load are common (counted from it).
    return f"2026-06-{day:02d}T{rng.randrange(10, 18):02d}:00:00.000Z"


def _span(rng: random.Random, sid: str, n: int, day: int) -> SpanDerived:
    kind = rng.choice(KINDS)
    attributes: dict[str, Any] = {}
    if kind == "SKILL":
        attributes["skill.name"] = rng.choice(NAMES)
        if rng.random() < 0.8:
            attributes["skill.content_hash"] = rng.choice((H1, H2, H3))
    if kind in ("LLM", "CHAIN"):
        for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
            # Reported, not reported, or not a count (true is not 1 token).
            attributes[key] = rng.choice((rng.randrange(1, 5000), rng.randrange(1, 90), True))
            if rng.random() < 0.3:
                del attributes[key]
    return SpanDerived(
        session_id=sid,
        deriver_version=1,
        span_id=f"{sid}-{n}",
        trace_id=sid,
        parent_span_id=None,
        kind=kind,  # type: ignore[arg-type]
        name=kind.lower(),
        start=_time(rng, day),
        outcome=rng.choice((None, "success", "failure")) if kind == "TOOL" else None,
        attributes=attributes,
    )


def _derivation(rng: random.Random, sid: str, day: int, spans: list[SpanDerived]) -> list[NewEvent]:
    names = sorted({str(s.attributes["skill.name"]) for s in spans if "skill.name" in s.attributes})
    if rng.random() < 0.1:
        names.append("tidy")  # listed by the session, no SKILL span of it: no load
    session = SessionDerived(
        session_id=sid,
        agent=rng.choice(("claude", "codex")),
        native_session_id=sid,
        deriver_version=1,
        cwd=rng.choice(("/p/one", "/p/two")),
        started_at=f"2026-06-{day:02d}T00:00:00.000Z",
        ended_at=rng.choice((None, f"2026-06-{day:02d}T23:59:00.000Z")),
        tools=sum(s.kind == "TOOL" for s in spans),
        skills=sorted(set(names)),
        tokens=TokenUsage(input=rng.randrange(1000), output=rng.randrange(100)),
        span_ids=[s.span_id for s in spans],
    )
    stream = f"session:{sid}"
    return [*(NewEvent(stream, s) for s in spans), NewEvent(stream, session)]


def _history(seed: int) -> list[list[NewEvent]]:
    """Batches of events: sessions derived, some derived again (spans changed, dropped,
    added, reordered), merged into another or purged."""
    rng = random.Random(seed)
    batches: list[list[NewEvent]] = [
        [
            NewEvent(f"skill:{name}", SkillVersionCreated(skill=name, version_hash=h, tag=tag))
            for name, h, tag in VERSIONS
        ]
    ]
    live: dict[str, list[SpanDerived]] = {}
    for i in range(60):
        sid, day = f"s{i:03d}", 1 + i % 28
        spans = [_span(rng, sid, n, day) for n in range(rng.randrange(0, 14))]
        live[sid] = spans
        batches.append(_derivation(rng, sid, day, spans))
        if i % 5 == 4:  # an earlier session derived again, or gone
            old = rng.choice(sorted(live))
            day = 1 + int(old[1:]) % 28
            roll = rng.random()
            events: list[Event]
            if roll < 0.1:
                events = [SessionPurged(session_id=old)]
                del live[old]
            elif roll < 0.2:
                events = [
                    SessionDerived(
                        session_id=old,
                        agent="codex",
                        native_session_id=old,
                        deriver_version=1,
                        merged_into=sid,
                    )
                ]
                del live[old]
            else:
                kept = [s for s in live[old] if rng.random() < 0.8]
                # Each kept span changed (a new draw under its id) or not.
                changed = [
                    _span(rng, old, int(k.span_id.rsplit("-", 1)[1]), day)
                    if rng.random() < 0.5
                    else k
                    for k in kept
                ]
                changed += [_span(rng, old, 100 + n, day) for n in range(rng.randrange(3))]
                rng.shuffle(changed)
                live[old] = changed
                batches.append(_derivation(rng, old, day, changed))
                continue
            batches.append([NewEvent(f"session:{old}", e) for e in events])
    return batches


def _report(conn: apsw.Connection, skill: str) -> bytes:
    return msgspec.json.encode(skill_report(conn, skill))


@pytest.mark.parametrize("seed", range(6))
def test_skill_show_reads_the_projection_as_it_read_the_spans(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database.open(tmp_path / "p.db")
    log = EventLog(db)
    engine = ProjectionEngine(db, default_projections())
    for n, batch in enumerate(_history(seed)):
        log.append(batch)
        if n % 4 == 0:
            engine.catch_up(chunk=7)  # folded in small increments, as a daemon does
    engine.catch_up(chunk=7)
    incremental = engine.digest()
    engine.rebuild()
    assert engine.digest() == incremental  # what rebuild --check compares

    with db.read() as conn:
        loads = conn.execute("SELECT count(*), count(tokens) FROM p_skill_loads").fetchone()
        assert loads[0] > 10 and loads[1] > 0  # the draw has loads, and tokens after them
        for skill in ("tidy", "acme:tidy", "other"):
            new = _report(conn, skill)
            with monkeypatch.context() as m:
                m.setattr(skill_views, "skill_loads", loads_from_spans)
                old = _report(conn, skill)
            assert new == old, skill
            shown = msgspec.json.decode(new)
            assert any(v["scoped"]["tokens"]["n"] for v in shown["versions"]), skill
