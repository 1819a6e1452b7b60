"""Capture in process against inputs that used to stop it: big files, rewritten files,
bytes that are not UTF-8, deep nesting, names that are not UTF-8, FIFOs, races, vanishing."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import msgspec
import pytest

from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog, verify_chain
from skillopsd.events.types import DeriveErrorRecorded, SourceFileReset
from skillopsd.sources import STORES, Capturer, capture_all, full_pass, path_text, resolve_roots
from skillopsd.sources._capture import _BLOCK

from ._capture_helpers import FIXTURES, capture_errors, captured, claude_project, file_lines

CLAUDE = STORES["claude"]


def _roots(home: Path):
    return resolve_roots(env={"HOME": str(home)})


def real_lines(session: str, total_bytes: int) -> bytes:
    """Real Claude Code lines repeated to ``total_bytes``, each copy with fresh uuids."""
    records = [msgspec.json.decode(line) for _, line in file_lines(FIXTURES / "claude_skill.jsonl")]
    out = bytearray()
    while len(out) < total_bytes:
        for record in records:
            fresh = dict(record, sessionId=session)
            if "uuid" in fresh:
                fresh["uuid"] = str(uuid.uuid4())
            out += msgspec.json.encode(fresh) + b"\n"
    return bytes(out)


def test_a_file_of_several_blocks_is_read_to_the_end_in_one_pass(
    db: Database, tmp_path: Path
) -> None:
    target = claude_project(tmp_path) / "big.jsonl"
    target.write_bytes(real_lines("big", 2 * _BLOCK + _BLOCK // 2))
    result = Capturer(db).capture_file(target, CLAUDE)
    expected = file_lines(target)
    assert result.lines == len(expected)
    assert [(e.offset, e.line) for e in captured(db)] == expected
    assert db.conn.execute("SELECT offset, seen_size FROM capture_sources").fetchone() == (
        target.stat().st_size,
        target.stat().st_size,
    )


def test_rewrite_with_the_same_head_is_a_reset_not_a_fragment(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    head = real_lines("s", 4096)[:4096]
    head = head[: head.rfind(b"\n") + 1]  # whole lines, over a KiB
    first = head + b'{"sessionId":"s","n":"old line one"}\n{"sessionId":"s","n":"old two"}\n'
    target.write_bytes(first)
    capturer = Capturer(db)
    capturer.capture_file(target, CLAUDE)
    # Same first KiB and more: the old code read on from the old offset, mid-line.
    second = head + b'{"sessionId":"s","n":"a different, longer line"}\n' * 3
    with open(target, "r+b") as fh:  # same inode, truncated and rewritten
        fh.truncate(0)
        fh.write(second)
    assert len(second) > len(first)
    capturer.capture_file(target, CLAUDE)
    with db.read():
        resets = [e.payload for e in EventLog(db).read(types=["SourceFileReset"])]
    assert [(r.reason, r.previous_offset) for r in resets if isinstance(r, SourceFileReset)] == [
        ("replaced", len(first))
    ]
    generation2 = [(e.offset, e.line) for e in captured(db) if e.generation == 2]
    assert generation2 == file_lines(target)
    assert all(e.line.startswith(b"{") for e in captured(db))


def test_an_appended_file_is_not_reset(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    data = real_lines("s", 200_000)
    capturer = Capturer(db)
    for cut in (50_000, 120_000, len(data)):
        with open(target, "ab") as fh:
            fh.write(data[target.stat().st_size if target.exists() else 0 : cut])
        capturer.capture_file(target, CLAUDE)
    assert [(e.offset, e.line) for e in captured(db)] == file_lines(target)
    assert db.conn.execute("SELECT max(generation) FROM capture_sources").fetchone()[0] == 1


def test_bad_bytes_and_deep_nesting_are_stored_as_read_and_flagged(
    db: Database, tmp_path: Path
) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    good = b'{"sessionId":"s","type":"user","message":{"role":"user","content":"hi"}}'
    lines = [
        good,
        b'{"sessionId":"s","type":"user","message":{"content":"a\xff\xfe"}}',
        b'{"sessionId":"s","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"sessionId":"s","x":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"sessionId":"s","password":"hunter2hunter2","x":"\xc3"}',
        b'{"sessionId":"s","x":"\\ud800"}',
    ]
    target.write_bytes(b"\n".join(lines) + b"\n")
    full_pass(Capturer(db), _roots(tmp_path))
    got = captured(db)
    assert [e.json_ok for e in got] == [True, False, False, False, False, False]
    assert [e.line for e in got[:4]] == lines[:4]  # stored as read (nothing to redact)
    assert b"hunter2" not in got[4].line and got[4].redactions == 1
    deriver = SessionDeriver(db)
    result = deriver.derive(deriver.all_sessions())
    assert result.sessions == 1
    with db.read():
        errors = [
            e.payload.offset
            for e in EventLog(db).read(types=["DeriveErrorRecorded"])
            if isinstance(e.payload, DeriveErrorRecorded)
        ]
    assert sorted(errors) == [e.offset for e in got[1:]]


def test_a_name_that_is_not_utf8_is_captured_once_under_its_escaped_name(
    db: Database, tmp_path: Path
) -> None:
    project = claude_project(tmp_path)
    raw = os.path.join(os.fsencode(project), b"ses\xff\xfe.jsonl")
    with open(raw, "wb") as fh:
        fh.write(b'{"type":"user"}\n')
    capturer = Capturer(db)
    full_pass(capturer, _roots(tmp_path))
    with open(raw, "ab") as fh:
        fh.write(b'{"type":"assistant"}\n')
    full_pass(capturer, _roots(tmp_path))
    (path, session) = db.conn.execute("SELECT path, session FROM capture_sources").fetchone()
    assert path == path_text(os.fsdecode(raw)) and path.endswith("ses\\xff\\xfe.jsonl")
    assert session == "ses\\xff\\xfe"
    assert [e.line for e in captured(db)] == [b'{"type":"user"}', b'{"type":"assistant"}']
    assert verify_chain(db).ok


def _problems(db: Database) -> list[tuple[str, str]]:
    return list(db.conn.execute("SELECT path, kind FROM capture_problems ORDER BY path"))


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
def test_a_non_regular_file_is_never_opened_and_recorded_once(
    db: Database, tmp_path: Path, kind: str
) -> None:
    project = claude_project(tmp_path)
    odd = project / "odd.jsonl"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(odd))
    else:
        odd.mkdir()
    (project / "fine.jsonl").write_bytes(b'{"sessionId":"fine"}\n')
    capturer = Capturer(db)
    done = threading.Event()

    def passes() -> None:
        for _ in range(3):
            full_pass(capturer, _roots(tmp_path))
            capturer.capture_file(odd, CLAUDE)  # a watch hint names it too
        done.set()

    # A FIFO opened for reading blocks until a writer comes: run where a hang cannot stick.
    worker = threading.Thread(target=passes, daemon=True)
    worker.start()
    assert done.wait(30), "capture blocked on a non-regular file"
    assert [e.line for e in captured(db)] == [b'{"sessionId":"fine"}']
    if kind != "directory":  # a folder named *.jsonl is walked as a folder, not claimed
        assert _problems(db) == [(str(odd), "not_regular")]
        (error,) = capture_errors(db)
        assert error.kind == "not_regular" and error.path == str(odd)
        # Replaced by a regular file: captured, and the problem is over.
        odd.unlink()
        odd.write_bytes(b'{"sessionId":"odd"}\n')
        full_pass(capturer, _roots(tmp_path))
        assert _problems(db) == []
        assert b'{"sessionId":"odd"}' in [e.line for e in captured(db)]


def test_two_capturers_racing_drop_only_raced_sources_and_both_finish(tmp_path: Path) -> None:
    project = claude_project(tmp_path)
    files = []
    for n in range(6):
        path = project / f"s{n}.jsonl"
        # The first file holds more than a batch: ``one`` commits in the middle of it.
        path.write_bytes(real_lines(f"s{n}", 3_000_000 if n == 0 else 100_000 + 50_000 * n))
        files.append((path, CLAUDE))
    first = Database.open(tmp_path / "db")
    second = Database.open(tmp_path / "db")
    try:
        one = Capturer(first)
        other = Capturer(second)
        # ``one`` has committed its first batch, in the middle of a file, when ``other``
        # captures every file: ``one``'s next batch holds a source ``other`` moved on.
        interleaved = {"done": False}

        def race(_n: int) -> None:
            if not interleaved["done"]:
                interleaved["done"] = True
                capture_all(other, files)

        one.on_batch = race
        capture_all(one, files)
        assert one.races > 0  # the interleaving did race
        lines = captured(first)
        keys = [(e.source_id, e.offset) for e in lines]
        assert len(keys) == len(set(keys))  # exactly once
        expected = sum(len(file_lines(p)) for p, _ in files)
        assert len(lines) == expected
        assert verify_chain(first).ok
    finally:
        first.close()
        second.close()


def test_a_file_gone_before_it_was_read_to_its_end_is_recorded_as_lost(
    db: Database, tmp_path: Path
) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(real_lines("s", 3_000_000))
    size = target.stat().st_size
    stop = {"now": False}

    def stop_after_first_batch(_n: int) -> None:
        stop["now"] = True

    # The daemon told to stop mid-read: what it read stays, the rest is lag while the file is
    # there and loss once it is gone.
    capturer = Capturer(db, should_stop=lambda: stop["now"], on_batch=stop_after_first_batch)
    result = capture_all(capturer, [(target, CLAUDE)])
    assert result.stopped and 0 < result.bytes < size
    offset = db.conn.execute("SELECT offset FROM capture_sources").fetchone()[0]
    before = file_lines(target)
    target.unlink()
    again = Capturer(db)
    full_pass(again, _roots(tmp_path))
    full_pass(again, _roots(tmp_path))
    (vanished,) = capture_errors(db)
    assert (vanished.kind, vanished.offset, vanished.length) == ("vanished", offset, size - offset)
    row = db.conn.execute("SELECT lost, seen_size FROM capture_sources").fetchone()
    assert tuple(row) == (size - offset, size)
    assert [(e.offset, e.line) for e in captured(db)] == [
        (o, line) for o, line in before if o < offset
    ]
