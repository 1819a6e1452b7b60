"""A real daemon following a Gemini session rewritten in place, killed between rewrites."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillopsd.documents import replay
from skillopsd.events import Database, verify_chain

from ._agents import gemini_chats, gemini_document, gemini_files, write_document
from ._capture_helpers import captured
from ._daemon import DaemonProcess, db_path

pytestmark = pytest.mark.slow


def _stored(home: Path) -> list[dict[str, Any]]:
    path = db_path(home)
    if not path.exists():
        return []
    db = Database.open(path)
    try:
        lines = sorted(captured(db), key=lambda e: e.offset)
    except Exception:  # not created yet
        return []
    finally:
        db.close()
    return [msgspec.json.decode(e.line) for e in lines]


def _messages(home: Path) -> list[Any]:
    doc = replay(msgspec.json.encode(line) for line in _stored(home))
    return list(doc.collections.get("messages", {}).values())


def test_a_daemon_killed_between_and_during_rewrites_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    source = next(f for f in gemini_files() if f.name.startswith("f7633853"))  # 13 calls
    doc = gemini_document(source)
    messages = doc["messages"]
    home = tmp_path / "home"
    path = gemini_chats(home) / "session-2026-01-15T09-00-f7633853.json"
    rng = random.Random(12)
    n = 1
    write_document(path, {**doc, "messages": messages[:n]})
    for _round in range(3):
        daemon = DaemonProcess(home, "--no-derive")
        try:
            daemon.wait_for(lambda want=n: len(_messages(home)) == want, timeout=60)
            # Rewrites while it runs; it is killed right after one, mid-capture or not.
            for _ in range(rng.randint(1, 2)):
                n = min(n + 1, len(messages))
                write_document(path, {**doc, "lastUpdated": f"t{n}", "messages": messages[:n]})
        finally:
            daemon.kill()
        # ... and the session goes on while no daemon runs.
        n = min(n + 1, len(messages))
        write_document(path, {**doc, "lastUpdated": f"t{n}", "messages": messages[:n]})
    assert n < len(messages) - 3  # rewrites left for the running daemon to follow
    daemon = DaemonProcess(home, "--no-derive")
    try:
        daemon.wait_for(lambda want=n: len(_messages(home)) == want, timeout=60)
        # A running daemon follows rewrites as they happen (no rescan for minutes).
        for m in range(n + 1, len(messages) + 1):
            write_document(path, {**doc, "lastUpdated": f"t{m}", "messages": messages[:m]})
            daemon.wait_for(lambda want=m: len(_messages(home)) == want, timeout=30)
        write_document(path, doc)
        daemon.wait_for(lambda: _messages(home) == messages, timeout=30)
    finally:
        daemon.stop()
    records = Counter(line["$record"]["id"] for line in _stored(home) if "$record" in line)
    assert records == Counter(m["id"] for m in messages)  # every message, each once
    db = Database.open(db_path(home))
    try:
        assert verify_chain(db).ok
        offsets = sorted(e.offset for e in captured(db))
        assert offsets == list(range(len(offsets)))  # ordinals gapless, none repeated
    finally:
        db.close()
