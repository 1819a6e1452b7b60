"""Deriving many sessions with worker processes gives exactly what one process gives."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillopsd import deriving
from skillopsd.derive import Derivation, SourceLines, derive_session
from skillopsd.deriving import MAX_WORKERS, POOL_MIN_SESSIONS, SessionDeriver, idle_workers
from skillopsd.events import Database, EventLog
from skillopsd.pricing import forget_prices_ahead, price
from skillopsd.projections import ProjectionEngine, default_projections
from skillopsd.projections.usage import price_args
from skillopsd.sources import Capturer, full_pass, resolve_roots

from ._capture_helpers import FIXTURES, claude_project
from ._daemon import daemon_env
from ._export_helpers import run_once
from .conftest import run_ctl

_ORIGINAL = "4438ec3f-cef8-537e-8237-ef36ba665ed7"  # the fixture's session id
_BROKEN = "00000000-0000-4000-8000-000000000003"
_PIDS: list[Path] = []  # the file _flaky notes its process id in (forked workers see it)


def _flaky(agent: str, native_id: str, sources: list[SourceLines], **kwargs: Any) -> Derivation:
    """The real deriver, except that it fails on one session (a deriver bug)."""
    with _PIDS[0].open("a") as f:
        f.write(f"{os.getpid()}\n")
    if native_id == _BROKEN:
        raise ValueError("no such luck")
    return derive_session(agent, native_id, sources, **kwargs)


def _sessions(tmp_path: Path, name: str) -> Database:
    """A database holding POOL_MIN_SESSIONS + 2 captured copies of the skill fixture."""
    home = tmp_path / name
    text = (FIXTURES / "claude_skill.jsonl").read_text()
    for n in range(POOL_MIN_SESSIONS + 2):
        native = f"00000000-0000-4000-8000-{n:012d}"
        (claude_project(home) / f"{native}.jsonl").write_text(text.replace(_ORIGINAL, native))
    db = Database.open(tmp_path / f"{name}.db")
    full_pass(Capturer(db), resolve_roots(env={}, home=home))
    return db


def _derived(tmp_path: Path, name: str, workers: int) -> list[tuple[str, str, str, bytes]]:
    """(stream, type, event id, payload) of every derived event, per stream in order."""
    db = _sessions(tmp_path, name)
    try:
        deriver = SessionDeriver(db, derive=_flaky, workers=workers)
        result = deriver.derive(deriver.all_sessions())
        assert result.sessions == POOL_MIN_SESSIONS + 1 and result.errors == 1
        with db.read():
            events = [
                (e.stream, e.type, e.event_id, msgspec.json.encode(e.payload))
                for e in EventLog(db).read()
                if e.stream.startswith("session:")
            ]
        return sorted(events, key=lambda e: e[0])  # streams in order; each stream's own order
    finally:
        db.close()


def test_workers_derive_what_one_process_derives_failures_included(tmp_path: Path) -> None:
    _PIDS[:] = [tmp_path / "alone.pids"]
    alone = _derived(tmp_path, "alone", workers=1)
    _PIDS[:] = [tmp_path / "pooled.pids"]
    pooled = _derived(tmp_path, "pooled", workers=2)
    _PIDS.clear()
    assert set((tmp_path / "alone.pids").read_text().split()) == {str(os.getpid())}
    assert str(os.getpid()) not in (tmp_path / "pooled.pids").read_text().split()
    assert pooled == alone
    failed = [p for s, t, _, p in pooled if t == "DeriveErrorRecorded"]
    assert len(failed) == 1 and b"deriver failed: ValueError: no such luck" in failed[0]
    assert len({s for s, *_ in pooled}) == POOL_MIN_SESSIONS + 2


@pytest.mark.parametrize(
    ("cores", "load", "workers"),
    [(1, 0.0, 1), (2, 0.2, 2), (2, 1.0, 2), (2, 1.5, 1), (2, 6.0, 1), (16, 3.0, MAX_WORKERS)],
)
def test_workers_only_where_a_core_is_idle(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, workers: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert idle_workers() == workers


def _slow_after_first(
    agent: str, native_id: str, sources: list[SourceLines], **kwargs: Any
) -> Derivation:
    """The real deriver, slow on every session but the first two (in the order they are
    appended): the appending process is ahead of the workers from the third on."""
    if not native_id.endswith(("000000000000", "000000000001")):
        time.sleep(0.15)
    return derive_session(agent, native_id, sources, **kwargs)


def _views(db: Database) -> dict[str, str]:
    """Each projection's digest (skill_history's holds when its events were recorded)."""
    return {
        p.name: ProjectionEngine(db, [p]).digest()
        for p in default_projections()
        if p.name != "skill_history"
    }


def test_what_is_appended_while_workers_derive_is_folded_meanwhile_the_same_views(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """derive(appended=...) lets the caller fold what was appended while the workers still
    derive the rest: it is called mid-derivation (the log already holds some sessions, not
    all), and the log and every projection come out as deriving without it."""
    monkeypatch.setattr(deriving, "_FOLD_WAITING_EVENTS", 1)
    home = tmp_path / "home"
    text = (FIXTURES / "claude_skill.jsonl").read_text()
    for n in range(POOL_MIN_SESSIONS + 2):
        native = f"00000000-0000-4000-8000-{n:012d}"
        (claude_project(home) / f"{native}.jsonl").write_text(text.replace(_ORIGINAL, native))

    def run(name: str, fold: bool) -> tuple[list[tuple[str, str, str]], dict[str, str], list[int]]:
        db = Database.open(tmp_path / f"{name}.db")
        try:
            full_pass(Capturer(db), resolve_roots(env={}, home=home))
            engine = ProjectionEngine(db, default_projections())
            engine.catch_up()
            derived: list[int] = []

            def appended() -> None:
                engine.catch_up()
                with db.read():
                    derived.append(db.conn.execute("SELECT count(*) FROM p_sessions").fetchone()[0])

            deriver = SessionDeriver(db, derive=_slow_after_first, workers=2)
            result = deriver.derive(deriver.all_sessions(), appended=appended if fold else None)
            assert result.sessions == POOL_MIN_SESSIONS + 2
            engine.catch_up()
            with db.read():
                log = [(e.stream, e.type, e.event_id) for e in EventLog(db).read()]
            views = _views(db)
            engine.rebuild()
            assert _views(db) == views  # the folds in steps equal one fold of the log
            return log, views, derived
        finally:
            db.close()

    log, views, derived = run("folded", fold=True)
    assert derived and 0 < derived[0] < POOL_MIN_SESSIONS + 2, derived
    assert derived == sorted(derived)
    plain_log, plain_views, _ = run("plain", fold=False)
    assert log == plain_log
    assert views == plain_views


def _usage(db: Database) -> list[tuple[Any, ...]]:
    with db.read():
        return db.conn.execute("SELECT span_id, usd, priced_as FROM p_usage ORDER BY 1").fetchall()


def test_the_pricer_hands_over_the_price_of_every_response_the_workers_derived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[Any] = []
    monkeypatch.setattr(deriving, "price_ahead", lambda prices: handed.extend(prices))
    db = _sessions(tmp_path, "priced")
    try:
        deriver = SessionDeriver(db, workers=2, price=True)
        result = deriver.derive(deriver.all_sessions())
        assert result.sessions == POOL_MIN_SESSIONS + 2
        assert multiprocessing.active_children() == []  # workers and pricer are gone
        with db.read():
            spans = [e.payload for e in EventLog(db).read(types=["SpanDerived"])]
        wanted = [price_args(s) for s in spans if s.kind == "LLM"]
        assert wanted and None not in wanted
        # Each response's arguments with the price this process computes for them.
        assert dict(handed) == {args: price(*args) for args in wanted if args is not None}
        assert all(p is not None and p.usd > 0 for _, p in handed)
    finally:
        db.close()


def test_a_pricer_that_fails_leaves_the_pricing_to_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(encoded: bytes) -> bytes:
        raise RuntimeError("the pricer broke")

    def fold(name: str, workers: int) -> list[tuple[Any, ...]]:
        db = _sessions(tmp_path, name)
        try:
            deriver = SessionDeriver(db, workers=workers, price=True)
            deriver.derive(deriver.all_sessions())
            ProjectionEngine(db, default_projections()).catch_up()
            return _usage(db)
        finally:
            db.close()
            forget_prices_ahead()

    alone = fold("alone", workers=1)  # no pool, no pricer: the fold prices every response
    monkeypatch.setattr(deriving, "_price_all", broken)  # the forked pricer inherits it
    pooled = fold("pooled", workers=2)
    assert pooled and all(usd is not None and usd > 0 for _, usd, _ in pooled)
    assert [row[1:] for row in pooled] == [row[1:] for row in alone]


def test_the_daemon_prices_with_workers_what_it_prices_alone(tmp_path: Path) -> None:
    """Through the real daemon and CLI: a backfill whose workers and pricer price every
    response reports the same cost as one derived and priced in the daemon's own process."""

    def usage(name: str, workers: str) -> list[Any]:
        home = tmp_path / name
        text = (FIXTURES / "claude_skill.jsonl").read_text()
        for n in range(POOL_MIN_SESSIONS + 2):
            native = f"00000000-0000-4000-8000-{n:012d}"
            # Responses and calls of their own: not copies of one session.
            own = text.replace(_ORIGINAL, native).replace('"msg_', f'"msg_{n:02d}')
            own = own.replace('"toolu_', f'"toolu_{n:02d}').replace('"req_', f'"req_{n:02d}')
            (claude_project(home) / f"{native}.jsonl").write_text(own)
        run_once(home, "--derive-workers", workers)
        shown = run_ctl("usage", "session", "--json", env=daemon_env(home))
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["session"]

    pooled, alone = usage("pooled", "2"), usage("alone", "1")
    assert len(pooled) == POOL_MIN_SESSIONS + 2
    assert all(row["totalCost"] > 0 and not row["unpricedResponses"] for row in pooled)
    assert pooled == alone
