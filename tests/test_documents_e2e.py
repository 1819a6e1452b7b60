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

from ._agents import (
    gemini_chats,
    gemini_document,
    gemini_file,
    gemini_files,
    gemini_name,
    layout_gemini,
    write_document,
)
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


def _once(home: Path) -> None:
    import subprocess

    from ._daemon import daemon_env
    from .conftest import console_script

    done = subprocess.run(
        [console_script("skillopsd"), "--once", "--no-derive"],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _status(home: Path) -> dict[str, Any]:
    from ._daemon import daemon_env
    from .conftest import run_ctl

    done = run_ctl("status", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    out = msgspec.json.decode(done.stdout)
    assert isinstance(out, dict)
    return out


def test_documents_that_never_become_valid_are_said_once_each_and_cleared_when_fixed(
    tmp_path: Path,
) -> None:
    """Found by a reviewer: a cut-off document, a binary one and ``[]`` in Gemini's chats
    folder, with ``skillopsd --once`` run twice, gave no session, no error, no problem and
    lag 0 (each run saw each for the first time and waited for a rewrite that never came)."""
    import os

    from skillopsd.events import EventLog

    cut, whole = gemini_file("15f05963"), gemini_file("18f475c0")
    home = tmp_path / "home"
    chats = gemini_chats(home)
    broken = {
        chats / gemini_name(cut): cut.read_bytes()[:5000],
        chats / "session-2026-01-01T00-00-deadbeef.json": b"\x00\x01binary\xff",
        chats / "session-2026-01-01T00-00-cafecafe.json": b"[]\n",
    }
    for path, data in broken.items():
        path.write_bytes(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))  # written long ago: no writer is busy
    layout_gemini(home, whole)
    fresh = chats / "session-2026-01-01T00-00-0f0f0f0f.json"
    fresh.write_bytes(b'{"sessionId": "0f0f')  # being written right now

    for _ in range(3):  # said once, however many passes
        _once(home)
    status = _status(home)
    problems = {p["path"]: p for p in status["problems"]}
    assert set(problems) >= {str(p) for p in broken}, problems
    assert all(problems[str(p)]["kind"] == "invalid_document" for p in broken)
    assert str(fresh) not in problems  # its writer may still be at it: looked at again later
    assert status["sources"]["gemini"]["problems"] >= 3
    db = Database.open(db_path(home))
    try:
        errors = list(EventLog(db).read(types=["CaptureErrorRecorded"]))
    finally:
        db.close()
    assert sorted(e.payload.path for e in errors) == sorted(str(p) for p in broken)

    # A writer that finishes: the document is captured and its problem is over.
    cut_path = chats / gemini_name(cut)
    cut_path.write_bytes(cut.read_bytes())
    _once(home)
    problems = {p["path"] for p in _status(home)["problems"]}
    assert (
        str(cut_path) not in problems
        and str(chats / "session-2026-01-01T00-00-cafecafe.json") in problems
    )


def test_a_document_with_bytes_that_are_not_utf8_is_captured_and_said(tmp_path: Path) -> None:
    """Review K6: two bad bytes inside one string of a Gemini chat dropped the whole session
    ("not one JSON document"). It is captured with U+FFFD for them, and said once in status
    until the document is whole again."""
    import os

    whole = gemini_file("18f475c0")
    home = tmp_path / "home"
    path = gemini_chats(home) / gemini_name(whole)
    data = whole.read_bytes()
    at = data.index(b'"content": "') + len(b'"content": "')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    os.utime(path, (1_700_000_000, 1_700_000_000))
    _once(home)
    _once(home)
    stored = _stored(home)
    assert stored and "\ufffd\ufffd" in msgspec.json.encode(stored).decode()
    assert _messages(home), "its messages were captured"
    problems = [p for p in _status(home)["problems"] if p["path"] == str(path)]
    assert [p["kind"] for p in problems] == ["invalid_utf8"]
    assert problems[0]["message"].startswith(f"invalid UTF-8 at byte {at}: read as U+FFFD")

    path.write_bytes(data)  # fixed: the problem is over
    _once(home)
    assert not [p for p in _status(home)["problems"] if p["path"] == str(path)]
