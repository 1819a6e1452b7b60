"""Capture of documents rewritten in place: each record once, edits and rewinds as such,
nothing lost or doubled, files caught mid-rewrite retried, and the log alone rebuilds them."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.documents import replay
from skillopsd.events import Database, EventLog
from skillopsd.events.types import CaptureErrorRecorded, SourceFileTracked
from skillopsd.sources import STORES, Capturer
from skillopsd.sources._documents import DocState, diff
from skillopsd.sources._store import DocumentShape

from ._agents import gemini_chats, gemini_document, gemini_file, gemini_files, write_document
from ._capture_helpers import captured

GEMINI = STORES["gemini"]
SHAPE = DocumentShape(collections=("messages",))
REAL = gemini_file("cdb14b05")  # 40 tool calls


def _lines(db: Database) -> list[dict[str, Any]]:
    lines = sorted(captured(db), key=lambda e: (e.source_id, e.generation, e.offset))
    return [msgspec.json.decode(e.line) for e in lines]


def _replayed(db: Database) -> tuple[dict[str, Any], list[Any]]:
    lines = sorted(captured(db), key=lambda e: e.offset)
    doc = replay(e.line for e in lines)
    return doc.meta, list(doc.collections.get("messages", {}).values())


def _session_file(home: Path) -> Path:
    return gemini_chats(home) / "session-2026-04-14T10-00-cdb14b05.json"


def _grow(capturer: Capturer, path: Path, doc: dict[str, Any], upto: range) -> int:
    """Rewrite ``path`` as the writer does after each message; the bytes written in all."""
    written = 0
    messages = doc["messages"]
    for n in upto:
        write_document(path, {**doc, "lastUpdated": f"t{n}", "messages": messages[:n]})
        written += path.stat().st_size
        capturer.capture_file(path, GEMINI)
    return written


def test_a_session_growing_by_rewrites_stores_each_message_once(
    db: Database, tmp_path: Path
) -> None:
    doc = gemini_document(REAL)
    messages = doc["messages"]
    path = _session_file(tmp_path)
    written = _grow(Capturer(db), path, doc, range(1, len(messages) + 1))

    lines = _lines(db)
    records = [line["$record"]["id"] for line in lines if "$record" in line]
    assert Counter(records) == Counter(m["id"] for m in messages)  # each message once
    meta, replayed = _replayed(db)
    assert replayed == messages
    assert meta == {
        **{k: v for k, v in doc.items() if k != "messages"},
        "lastUpdated": f"t{len(messages)}",
    }
    stored = sum(len(e.line) for e in captured(db))
    final = path.stat().st_size
    # What is stored grows with the new content: about the final document (which is
    # indented), not the sum of its rewrites.
    assert stored < 1.1 * final and written > 20 * final


def test_an_edit_is_a_new_version_and_a_rewind_is_recorded_as_one(
    db: Database, tmp_path: Path
) -> None:
    doc = gemini_document(REAL)
    messages = doc["messages"]
    path = _session_file(tmp_path)
    capturer = Capturer(db)
    _grow(capturer, path, doc, range(10, 11))
    # The model response gets its tokens: the same id, new content.
    edited = [*messages[:9], {**messages[9], "tokens": {"input": 1, "output": 2}}]
    write_document(path, {**doc, "messages": edited})
    capturer.capture_file(path, GEMINI)
    # The user rewinds to before the 7th message and goes on with another one.
    other = {**messages[6], "id": "after-rewind", "content": [{"text": "instead"}]}
    write_document(path, {**doc, "messages": [*edited[:6], other]})
    capturer.capture_file(path, GEMINI)

    lines = _lines(db)
    versions = [line["$record"] for line in lines if "$record" in line]
    assert [v["id"] for v in versions].count(messages[9]["id"]) == 2
    assert versions[-2]["value"]["tokens"] == {"input": 1, "output": 2}
    removals = [line["$remove"] for line in lines if "$remove" in line]
    assert removals == [{"in": "messages", "ids": [m["id"] for m in edited[6:]], "rewind": True}]
    _meta, replayed = _replayed(db)
    assert replayed == [*edited[:6], other]


def test_a_document_caught_mid_rewrite_waits_and_one_that_stays_invalid_is_one_error(
    db: Database, tmp_path: Path
) -> None:
    doc = gemini_document(REAL)
    path = _session_file(tmp_path)
    capturer = Capturer(db)
    _grow(capturer, path, doc, range(3, 4))
    full = msgspec.json.format(msgspec.json.encode({**doc, "messages": doc["messages"][:5]}))
    path.write_bytes(full[: len(full) // 2])  # the writer truncated and is half-way through
    result = capturer.capture_file(path, GEMINI)
    assert (result.lines, result.errors) == (0, 0)
    path.write_bytes(full)  # ... and finished
    assert capturer.capture_file(path, GEMINI).lines == 3  # lastUpdated, two messages
    assert [m["id"] for m in _replayed(db)[1]] == [m["id"] for m in doc["messages"][:5]]

    path.write_bytes(full[:100])  # a writer that died half-way
    assert capturer.capture_file(path, GEMINI).errors == 0  # perhaps mid-rewrite
    assert capturer.capture_file(path, GEMINI).errors == 1  # unchanged: it stays invalid
    assert capturer.capture_file(path, GEMINI).errors == 0  # and is said once
    assert Capturer(db).capture_file(path, GEMINI).errors == 0  # also after a restart
    errors = [e.payload for e in EventLog(db).read(types=["CaptureErrorRecorded"])]
    assert len(errors) == 1 and isinstance(errors[0], CaptureErrorRecorded)
    assert errors[0].kind == "invalid_document" and errors[0].path == str(path)
    assert len(_replayed(db)[1]) == 5  # nothing stored was harmed


def test_a_document_moved_to_another_folder_is_the_same_source(
    db: Database, tmp_path: Path
) -> None:
    """Gemini 0.29 moved hash-named project folders to slugs: not a second copy."""
    doc = gemini_document(REAL)
    path = _session_file(tmp_path)
    capturer = Capturer(db)
    _grow(capturer, path, doc, range(4, 5))
    moved = gemini_chats(tmp_path, "my-project") / path.name
    os.rename(path, moved)
    write_document(moved, {**doc, "messages": doc["messages"][:6]})
    capturer.capture_file(moved, GEMINI)
    tracked = list(EventLog(db).read(types=["SourceFileTracked", "SourceFileMoved"]))
    assert [type(e.payload).__name__ for e in tracked] == ["SourceFileTracked", "SourceFileMoved"]
    assert isinstance(tracked[0].payload, SourceFileTracked)
    assert len([line for line in _lines(db) if "$record" in line]) == 6


def test_secrets_in_a_document_are_masked(db: Database, tmp_path: Path) -> None:
    doc = gemini_document(REAL)
    secret = "ghp_" + "Q7" * 18
    first = {**doc["messages"][0], "content": [{"text": f"use token {secret} please"}]}
    path = _session_file(tmp_path)
    write_document(path, {**doc, "messages": [first]})
    Capturer(db).capture_file(path, GEMINI)
    stored = b"".join(e.line for e in captured(db))
    assert secret.encode() not in stored and b"use token" in stored
    assert sum(e.redactions for e in captured(db)) == 1


# --- the class: any sequence of documents ---------------------------------------------

_ids = st.sampled_from([f"m{i}" for i in range(8)] + [None])
_message = st.fixed_dictionaries(
    {"id": _ids, "type": st.sampled_from(["user", "gemini"]), "content": st.text(max_size=4)}
).map(lambda m: {k: v for k, v in m.items() if v is not None})
_meta = st.dictionaries(
    st.sampled_from(["sessionId", "lastUpdated", "summary", "kind"]), st.integers(0, 3)
)
_docs = st.lists(
    st.tuples(_meta, st.lists(_message, max_size=8)).map(lambda t: {**t[0], "messages": t[1]}),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_docs)
def test_replaying_the_lines_of_any_sequence_of_documents_gives_the_last(
    docs: list[dict[str, Any]],
) -> None:
    state = DocState()
    lines: list[bytes] = []
    for doc in docs:
        new, state = diff(state, doc, SHAPE)
        lines += new
        again, state2 = diff(state, doc, SHAPE)
        assert again == [] and state2 == state  # an unchanged document adds nothing
    replayed = replay(lines)
    last = docs[-1]
    assert replayed.meta == {k: v for k, v in last.items() if k != "messages"}
    assert list(replayed.collections.get("messages", {}).values()) == last["messages"]
    assert state.ordinal == len(lines)


def test_a_document_that_is_not_an_object_or_has_no_records_is_handled() -> None:
    lines, state = diff(DocState(), {"sessionId": "s", "messages": "not a list"}, SHAPE)
    assert replay(lines).meta == {"sessionId": "s", "messages": "not a list"}
    assert state.records == {}


@pytest.mark.parametrize("source", gemini_files(), ids=lambda p: p.name[:8])
def test_every_real_document_replays_to_itself(source: Path, db: Database, tmp_path: Path) -> None:
    if source.suffix != ".json":
        pytest.skip("appended JSON lines are tailed, not captured as a document")
    doc = gemini_document(source)
    path = gemini_chats(tmp_path) / f"session-x-{source.stem[:8]}.json"
    path.write_bytes(source.read_bytes())
    Capturer(db).capture_file(path, GEMINI)
    meta, messages = _replayed(db)
    assert messages == doc["messages"] or not doc["messages"]
    assert meta == {k: v for k, v in doc.items() if k != "messages"}
