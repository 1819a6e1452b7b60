"""The backfill runs without the cyclic garbage collector, and leaves it as it found it."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import skillopsd.daemon as daemon_module
from skillopsd.daemon import Daemon
from skillopsd.events import Database
from skillopsd.sources import resolve_roots

from ._capture_helpers import claude_project

_SESSION = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to the collector is undone after it."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        else:
            gc.disable()


def _daemon(tmp_path: Path) -> Daemon:
    home = tmp_path / "home"
    line = {
        "type": "user",
        "sessionId": _SESSION,
        "uuid": "u1",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {"role": "user", "content": "hello"},
    }
    project = claude_project(home)
    (project / f"{_SESSION}.jsonl").write_text(json.dumps(line) + "\n")
    db = Database.open(tmp_path / "skillops.db", fsync_commits=False)
    return Daemon(db, resolve_roots(env={}, home=home), workers=1)


def _watch_capture(monkeypatch: pytest.MonkeyPatch, seen: list[bool], fail: bool = False) -> None:
    real = daemon_module.full_pass

    def full_pass(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        result = real(*args, **kwargs)
        if fail:
            raise RuntimeError("capture failed")
        return result

    monkeypatch.setattr(daemon_module, "full_pass", full_pass)


@pytest.mark.usefixtures("collector")
def test_backfill_captures_without_the_collector_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path)
    seen: list[bool] = []
    _watch_capture(monkeypatch, seen)
    gc.enable()
    result = daemon.backfill()
    assert result.lines == 1
    assert seen == [False]
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_backfill_that_fails_restores_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path)
    _watch_capture(monkeypatch, [], fail=True)
    gc.enable()
    with pytest.raises(RuntimeError, match="capture failed"):
        daemon.backfill()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_backfill_leaves_a_disabled_collector_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path)
    _watch_capture(monkeypatch, [])
    gc.disable()
    daemon.backfill()
    assert not gc.isenabled()
