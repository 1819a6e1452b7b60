"""The shipped payload dictionary: copied in on first use, immutable, holding no user's content."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import tarfile
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from skillopsd.events import Database, EventLog, NewEvent, verify_chain
from skillopsd.events._compress import DICTIONARY_FILE, shipped_dictionary
from skillopsd.events.types import PolicySet, TranscriptLineCaptured

from .conftest import REPO, SHARED

CORPUS = SHARED / "corpus" / "real-home.tar.gz"


def _line(i: int, text: str = "") -> NewEvent:
    body = {"type": "user", "sessionId": f"s{i % 3}", "message": {"content": f"{text} step {i}"}}
    return NewEvent(
        f"source:{i % 3}",
        TranscriptLineCaptured(
            agent="claude",
            source_id=str(i % 3),
            generation=1,
            offset=i * 100,
            line=msgspec.json.encode(body),
            captured_at="2025-01-01T00:00:00.000000Z",
        ),
    )


def _dictionaries(db: Database) -> list[tuple[int, bytes]]:
    return list(db.conn.execute("SELECT id, sha256 FROM payload_dictionaries ORDER BY id"))


def test_first_append_copies_the_shipped_dictionary_once(db: Database) -> None:
    _, sha = shipped_dictionary()
    assert sha == hashlib.sha256(DICTIONARY_FILE.read_bytes()).digest()
    log = EventLog(db)
    log.append([_line(i, "x" * 80) for i in range(30)])
    log.append([_line(i, "y" * 80) for i in range(30, 60)])
    assert _dictionaries(db) == [(2, sha)]
    codecs = {c for (c,) in db.conn.execute("SELECT DISTINCT codec FROM events")}
    assert codecs == {2}
    assert [e.payload for e in log.read()] == [_line(i, t).payload for i, t in _texts()]
    assert verify_chain(db).ok


def _texts() -> list[tuple[int, str]]:
    return [(i, "x" * 80) for i in range(30)] + [(i, "y" * 80) for i in range(30, 60)]


def test_an_older_dictionary_stays_readable_and_the_shipped_one_comes_next(
    db: Database,
) -> None:
    older = b"\x00" * 8 + b"an older database's own dictionary, kept raw" * 40
    with db.write() as conn:
        conn.execute(
            "INSERT INTO payload_dictionaries (id, sha256, data) VALUES (2, ?, ?)",
            (hashlib.sha256(older).digest(), older),
        )
    log = EventLog(db)
    log.append([_line(i, "z" * 90) for i in range(5)])
    assert [i for i, _ in _dictionaries(db)] == [2, 3]
    assert {c for (c,) in db.conn.execute("SELECT DISTINCT codec FROM events")} == {3}
    assert verify_chain(db).ok


def test_a_rolled_back_first_use_leaves_no_dangling_codec(db: Database) -> None:
    log = EventLog(db)
    with pytest.raises(RuntimeError), db.write():
        log.append([_line(i, "w" * 90) for i in range(5)])
        raise RuntimeError("the batch fails after the dictionary was copied in")
    assert _dictionaries(db) == []
    log.append([_line(i, "v" * 90) for i in range(5)])
    (codec,) = {c for (c,) in db.conn.execute("SELECT DISTINCT codec FROM events")}
    assert [i for i, _ in _dictionaries(db)] == [codec]
    assert len(list(log.read())) == 5 and verify_chain(db).ok


def test_plain_rows_and_dictionary_rows_live_side_by_side(db: Database) -> None:
    EventLog(db, dictionary=False).append([_line(i, "p" * 90) for i in range(4)])
    log = EventLog(db)
    log.append([NewEvent("policy", PolicySet(name="n" * 80, values={"k": "v" * 80}))])
    assert [c for (c,) in db.conn.execute("SELECT codec FROM events ORDER BY position")] == [
        1,
        1,
        1,
        1,
        2,
    ]
    assert len(list(log.read())) == 5 and verify_chain(db).ok


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "payload_dictionary", REPO / "tools" / "payload_dictionary.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _payload(stream: int, owner: str, text: str) -> tuple[str, bytes]:
    line = {"cwd": f"/Users/{owner}/p", "kind": "shared-vocabulary", "text": text}
    event = TranscriptLineCaptured(
        agent="claude",
        source_id=f"{stream:032x}",
        generation=1,
        offset=stream,
        line=msgspec.json.encode(line),
        captured_at=f"2025-01-0{stream % 9 + 1}T00:00:00.000000Z",
    )
    return f"source:{stream}", msgspec.msgpack.encode(event)


def test_skeletons_keep_only_strings_shared_across_users() -> None:
    tool = _tool()
    # One user's text, repeated in many of that user's sessions, against vocabulary both
    # users' sessions hold.
    payloads = [_payload(i, "alice", "alice's project notes") for i in range(6)]
    payloads += [_payload(10 + i, "bob", "bob's own words") for i in range(3)]
    skeletons = tool.skeletons(payloads)
    joined = b"".join(skeletons)
    assert b"shared-vocabulary" in joined and b"TranscriptLineCaptured" in joined
    for private in (b"alice", b"bob", b"project notes", b"own words", b"2025-01", b"/Users/"):
        assert private not in joined, private


@pytest.mark.skipif(not CORPUS.exists(), reason=f"needs the real corpus at {CORPUS}")
def test_the_shipped_dictionary_holds_no_identifier_of_the_corpus(tmp_path: Path) -> None:
    data = DICTIONARY_FILE.read_bytes()
    assert b"/Users/" not in data and b"/home/" not in data
    uuid = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert not uuid.search(data)
    with tarfile.open(CORPUS) as tar:
        names = [m.name for m in tar.getmembers() if m.name.endswith(".jsonl")]
    sessions = {Path(n).stem.encode() for n in names}
    assert sessions and not any(s in data for s in sessions if len(s) >= 8)
