"""Capturing documents an agent rewrites in place (one JSON value per file, rewritten whole).

The line tailer would store every rewrite again and its offsets would mean nothing. Instead
each pass decodes the whole document and stores only what changed since the pass before, in
the line format of :mod:`skillopsd.documents`: new or edited records (by the identity the
store gives them and a digest of their content), removed records (a rewind when they were the
tail), and document-level fields that changed. Stored bytes grow with the new content.

What a source has captured (each record's id and digest, each field's digest, the next
ordinal) is its row's ``doc_state`` in ``capture_sources``, staged and committed in the same
transaction as the events, so a crash between passes neither loses nor repeats a record.

A document that does not decode is usually caught mid-rewrite (the legacy Gemini writer
truncates and writes in place): it is left for the next pass. When it has not changed for
:data:`SETTLED_SECONDS`, or a later pass finds the very same invalid file again (same size and
mtime: the writer made no progress), one capture error is recorded for it: a document that
never becomes valid (a writer killed mid-write, a partial copy, a full disk) is said, not
waited on forever. A daemon's rescan comes back to a file that stopped changing.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec
import structlog

from .. import documents
from .._redact import redact
from ..events import utc_now
from ..events.types import (
    CaptureErrorRecorded,
    Event,
    SourceFileMoved,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from ._store import DocumentShape, Store, new_source_id, path_text, text_path

if TYPE_CHECKING:
    from ._capture import Capturer, FileResult, SourceRow

_log = structlog.get_logger(__name__)
_decoder = msgspec.json.Decoder()
_state_encoder = msgspec.msgpack.Encoder()
# A document larger than this many line limits is not read into memory.
_SIZE_FACTOR = 16
FINGERPRINT_PREFIX = "doc:"
# A writer rewrites a whole document in well under this: an invalid one this old is broken.
SETTLED_SECONDS = 5.0
# Problems of a document's content: said once, over when the document decodes (opening the
# file again is no sign they are over, unlike the problems of opening it).
INVALID_DOCUMENT = "invalid_document"
OVERSIZED = "oversized"
INVALID_UTF8 = "invalid_utf8"


class DocState(msgspec.Struct):
    """What one document source has captured so far."""

    ordinal: int = 0  # the offset of the next captured line
    meta: dict[str, str] = {}  # field -> digest of its value
    records: dict[str, list[tuple[str, str]]] = {}  # collection -> [(id, digest)], in order
    reported: str = ""  # "<size>:<mtime_ns>" of an invalid document already reported


_state_decoder = msgspec.msgpack.Decoder(DocState)


def _digest(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()[:32]


def _line(key: str, body: dict[str, Any]) -> bytes:
    return msgspec.json.encode({key: body})


def record_ids(records: list[Any], id_field: str) -> list[str]:
    """Each record's identity: its ``id_field`` if a string, else ``#<index>``; repeats of
    one id within the document get ``#<n>``."""
    seen: dict[str, int] = {}
    out = []
    for index, record in enumerate(records):
        ident = record.get(id_field) if isinstance(record, dict) else None
        base = ident if isinstance(ident, str) and ident else f"#{index}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}#{n}")
    return out


def diff(
    state: DocState, doc: dict[str, Any], shape: DocumentShape
) -> tuple[list[bytes], DocState]:
    """The document lines that bring what ``state`` captured up to ``doc``, and the new state.

    Pure: lines are unredacted and carry no offsets; the caller numbers them from
    ``state.ordinal``.
    """
    lines: list[bytes] = []
    collections = {c for c in shape.collections if isinstance(doc.get(c), list)}
    meta = {k: _digest(v) for k, v in doc.items() if k not in collections}
    changed = {k: doc[k] for k, d in meta.items() if state.meta.get(k) != d}
    unset = sorted(k for k in state.meta if k not in meta)
    if changed or unset:
        body: dict[str, Any] = {"set": changed}
        if unset:
            body["unset"] = unset
        lines.append(_line(documents.META, body))
    records: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(collections | set(state.records)):
        values = doc.get(name) if name in collections else []
        assert isinstance(values, list)
        ids = record_ids(values, shape.id_field)
        now = [(i, _digest(v)) for i, v in zip(ids, values, strict=True)]
        before = state.records.get(name, [])
        before_ids = [i for i, _ in before]
        present = set(ids)
        gone = [i for i in before_ids if i not in present]
        if gone:
            rewind = before_ids[len(before_ids) - len(gone) :] == gone
            lines.append(_line(documents.REMOVE, {"in": name, "ids": gone, "rewind": rewind}))
        digests = dict(before)
        for (ident, digest), value in zip(now, values, strict=True):
            if digests.get(ident) != digest:
                lines.append(_line(documents.RECORD, {"in": name, "id": ident, "value": value}))
        # Replay puts a new record after every surviving one: say so if the document differs.
        replayed = [i for i in before_ids if i in present]
        replayed += [i for i in ids if i not in digests]
        if replayed != ids:
            lines.append(_line(documents.ORDER, {"in": name, "ids": ids}))
        if now:
            records[name] = now
    new = DocState(
        ordinal=state.ordinal + len(lines), meta=meta, records=records, reported=state.reported
    )
    return lines, new


def _state(row: SourceRow | None) -> DocState:
    if row is None or not row.doc_state:
        return DocState()
    return _state_decoder.decode(row.doc_state)


def _state_token(state: DocState, encoded: bytes) -> str:
    # The batch's race check compares it: another process's pass changes it.
    return f"{FINGERPRINT_PREFIX}{state.ordinal}:{hashlib.sha256(encoded).hexdigest()[:24]}"


def _find(
    cap: Capturer, text: str, st: os.stat_result, agent: str, session: str | None
) -> tuple[SourceRow | None, bool]:
    """The tracked source this document is (and whether it was found under another path)."""
    ours = [
        r
        for r in cap._rows_by_path(text)
        if r.agent == agent and r.fingerprint.startswith(FINGERPRINT_PREFIX)
    ]
    if session is None:  # not decodable: any source at this path will do
        return (ours[-1] if ours else None), False
    for row in ours:
        if row.session == session:
            return row, False
    for row in cap._rows_by_inode(st.st_dev, st.st_ino):
        if (
            row.agent == agent
            and row.fingerprint.startswith(FINGERPRINT_PREFIX)
            and row.session == session
            and not os.path.exists(text_path(row.path))
        ):
            return row, True
    return None, False


def capture_document(
    cap: Capturer, fh: BinaryIO, path: Path, store: Store, shape: DocumentShape
) -> FileResult:
    """Capture what changed in the document at ``path`` since its last pass."""
    from ._capture import FileResult

    st = os.fstat(fh.fileno())
    text = path_text(path)
    if st.st_size == 0:
        return FileResult()  # created, not yet written
    limit = cap.max_line_bytes * _SIZE_FACTOR
    if st.st_size > limit:
        message = f"document of {st.st_size} bytes exceeds the {limit}-byte limit"
        return FileResult(errors=int(cap.problem(path, store.agent, OVERSIZED, message)))
    fh.seek(0)
    data = fh.read()
    error = "not a JSON object"
    repaired: str | None = None
    try:
        doc = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        error = str(exc) or type(exc).__name__
        doc, repaired = _repaired(data)
    if not isinstance(doc, dict):
        return _invalid(cap, path, text, st, store, error)
    cap.invalid_documents.pop(text, None)
    cap.resolved(path, OVERSIZED, INVALID_DOCUMENT)
    if repaired is None:
        cap.resolved(path, INVALID_UTF8)
    else:
        cap.problem(path, store.agent, INVALID_UTF8, repaired)
    ref = store.session_of(path, [doc])
    session, parent = path_text(ref.session), path_text(ref.parent_session)
    row, moved = _find(cap, text, st, store.agent, session)
    if row is not None and row.source_id in cap._raced:
        return FileResult()  # queued to be read again after the other writer's commit
    events: list[Event] = []
    if row is None:
        row, tracked = _track(st, text, store, session, parent)
        before = None
        events.append(tracked)
    else:
        before = cap._rows_after.get(row.source_id, row)
        row = before
        if moved:
            events.append(
                SourceFileMoved(source_id=row.source_id, old_path=row.path, new_path=text)
            )
            _log.info("document moved", source=row.source_id, old=row.path, new=text)
        # Rewritten by rename (a new inode) or moved: it is the same source.
        row = msgspec.structs.replace(row, path=text, device=st.st_dev, inode=st.st_ino)
    state = _state(row)
    lines, new_state = diff(state, doc, shape)
    now = utc_now()
    stored = 0
    for n, line in enumerate(lines):
        masked, count = redact(line, was_json=True)
        stored += len(masked)
        events.append(
            TranscriptLineCaptured(
                agent=row.agent,
                source_id=row.source_id,
                generation=row.generation,
                offset=state.ordinal + n,
                line=masked,
                captured_at=now,
                session=row.session,
                json_ok=True,
                redactions=count,
            )
        )
    encoded = _state_encoder.encode(new_state)
    new_row = msgspec.structs.replace(
        row,
        offset=st.st_size,
        seen_size=st.st_size,
        lost=0,
        lines=row.lines + len(lines),
        bytes=row.bytes + stored,
        doc_state=encoded,
        tail_digest=_state_token(new_state, encoded),
    )
    if events or new_row != row or before is None:
        consumed = st.st_size - min(row.offset, st.st_size)
        cap._stage(new_row, events, before, consumed, (len(lines), stored, 0))
    return FileResult(lines=len(lines), bytes=stored)


def _track(
    st: os.stat_result, text: str, store: Store, session: str, parent: str
) -> tuple[SourceRow, SourceFileTracked]:
    from ._capture import SourceRow

    fingerprint = FINGERPRINT_PREFIX + hashlib.sha256(session.encode()).hexdigest()[:28]
    source_id = new_source_id(store.agent, st.st_dev, st.st_ino, fingerprint, text)
    row = SourceRow(
        source_id=source_id,
        agent=store.agent,
        path=text,
        device=st.st_dev,
        inode=st.st_ino,
        fingerprint=fingerprint,
        fingerprint_len=0,
        generation=1,
        offset=0,
        session=session,
        parent_session=parent,
    )
    event = SourceFileTracked(
        agent=store.agent,
        source_id=source_id,
        path=text,
        device=st.st_dev,
        inode=st.st_ino,
        fingerprint=fingerprint,
        generation=1,
        session=session,
        parent_session=parent,
    )
    _log.debug("document tracked", source=source_id, path=text, session=session)
    return row, event


def _repaired(data: bytes) -> tuple[object, str | None]:
    """A document whose only fault is bytes that are not UTF-8, read with each such byte as
    U+FFFD (losing a character beats losing the session: review K6), and what to say of it;
    (None, None) when that is not its fault."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            doc = _decoder.decode(data.decode("utf-8", "replace").encode())
        except (msgspec.DecodeError, RecursionError):
            return None, None
        return doc, f"invalid UTF-8 at byte {exc.start}: read as U+FFFD (the rest as written)"
    return None, None


def _invalid(
    cap: Capturer, path: Path, text: str, st: os.stat_result, store: Store, error: str
) -> FileResult:
    """A document that does not decode: wait for the next pass, unless it did not change."""
    from ._capture import FileResult

    key = f"{st.st_size}:{st.st_mtime_ns}"
    seen = cap.invalid_documents.get(text)
    cap.invalid_documents[text] = key
    if seen != key and time.time() - st.st_mtime < SETTLED_SECONDS:
        return FileResult()  # probably caught mid-rewrite: look again next pass
    row, _moved = _find(cap, text, st, store.agent, None)
    message = f"not one JSON document ({error}; {st.st_size} bytes, not rewritten since)"
    if row is None:
        return FileResult(errors=int(cap.problem(path, store.agent, INVALID_DOCUMENT, message)))
    before = cap._rows_after.get(row.source_id, row)
    state = _state(before)
    if state.reported == key:
        return FileResult()
    state.reported = key
    encoded = _state_encoder.encode(state)
    event = CaptureErrorRecorded(
        agent=before.agent,
        source_id=before.source_id,
        path=text,
        offset=state.ordinal,
        length=st.st_size,
        kind=INVALID_DOCUMENT,
        message=message,
        generation=before.generation,
    )
    new_row = msgspec.structs.replace(before, errors=before.errors + 1, doc_state=encoded)
    cap._stage(new_row, [event], before, counts=(0, 0, 1))
    _log.warning("invalid document", path=text, size=st.st_size)
    return FileResult(errors=1)
