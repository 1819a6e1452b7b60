"""Capturing transcript files into the log exactly once.

Each file is a *source* with a row in ``capture_sources`` (its identity and committed offset).
A pass over a file stats it, decides whether it is new, moved, truncated or replaced, then
reads complete lines from the committed offset and appends them in batches; every batch
commits its events and the new offset in one transaction. Event ids are derived from
(source, generation, offset), so even a repeated read could not duplicate a line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec
import structlog

from ..events import Database, EventLog, NewEvent, content_id, utc_now
from ..events.types import (
    CaptureErrorRecorded,
    Event,
    SourceFileMoved,
    SourceFileReset,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from ._redact import redact
from ._store import Store, decode_head

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
FINGERPRINT_BYTES = 1024
_HEAD_BYTES = 1024 * 1024
_BLOCK = 4 * 1024 * 1024
_BATCH_LINES = 1000
_BATCH_BYTES = 8 * 1024 * 1024

_log = structlog.get_logger(__name__)
_json = msgspec.json.Decoder()


class SourceRow(msgspec.Struct):
    """A tracked transcript file and how far it has been captured."""

    source_id: str
    agent: str
    path: str
    device: int | None
    inode: int | None
    fingerprint: str
    fingerprint_len: int
    generation: int
    offset: int
    session: str
    parent_session: str
    lines: int = 0
    bytes: int = 0
    errors: int = 0


_ROW_COLUMNS = ", ".join(SourceRow.__struct_fields__)


class FileResult(msgspec.Struct):
    """What one pass over one file captured."""

    lines: int = 0
    bytes: int = 0
    errors: int = 0
    stopped: bool = False


class _Raced(Exception):
    """Another capturer advanced this source first; start the pass over."""


def source_stream(source_id: str) -> str:
    """The log stream holding one source file's events."""
    return f"source:{source_id}"


def _fingerprint(fh: BinaryIO, length: int) -> str:
    fh.seek(0)
    return hashlib.sha256(fh.read(length)).hexdigest()[:32]


class Capturer:
    """Captures transcript files into one database's log."""

    def __init__(
        self,
        db: Database,
        *,
        redact_secrets: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        should_stop: Callable[[], bool] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.log = EventLog(db)
        self.redact_secrets = redact_secrets
        self.max_line_bytes = max_line_bytes
        self.should_stop = should_stop or (lambda: False)
        # Called after every committed batch with the bytes it consumed (progress, watchdog).
        self.on_batch = on_batch or (lambda _n: None)

    # --- bookkeeping -------------------------------------------------------------------

    def _rows(self, where: str, args: tuple[object, ...]) -> list[SourceRow]:
        sql = f"SELECT {_ROW_COLUMNS} FROM capture_sources WHERE {where}"
        return [SourceRow(*r) for r in self.db.conn.execute(sql, args)]

    def _save(self, row: SourceRow) -> None:
        marks = ", ".join("?" * len(SourceRow.__struct_fields__))
        self.db.conn.execute(
            f"INSERT OR REPLACE INTO capture_sources ({_ROW_COLUMNS}) VALUES ({marks})",
            msgspec.structs.astuple(row),
        )

    def _commit(self, row: SourceRow, events: list[Event], expected: tuple[int, int]) -> None:
        """Append ``events`` to the source's stream and save ``row``, in one transaction."""
        with self.db.write():
            current = self._rows("source_id = ?", (row.source_id,))
            if current and (current[0].generation, current[0].offset) != expected:
                raise _Raced()
            stream = source_stream(row.source_id)
            self.log.append([NewEvent(stream, e, _event_id(row.source_id, e)) for e in events])
            self._save(row)

    # --- identity ----------------------------------------------------------------------

    def _identify(
        self, path: Path, st: os.stat_result, fh: BinaryIO, store: Store
    ) -> SourceRow | None:
        with self.db.read():
            by_inode = self._rows("device = ? AND inode = ?", (st.st_dev, st.st_ino))
            by_path = self._rows("path = ?", (str(path),))
        for row in by_inode:
            same_start = st.st_size >= row.fingerprint_len and (
                _fingerprint(fh, row.fingerprint_len) == row.fingerprint
            )
            if st.st_size < row.offset:
                return self._reset(row, path, st, fh, "truncated")
            if not same_start:
                if row.path == str(path):
                    return self._reset(row, path, st, fh, "replaced")
                continue  # an inode reused by an unrelated new file
            if row.path != str(path):
                moved = msgspec.structs.replace(row, path=str(path))
                event = SourceFileMoved(
                    source_id=row.source_id, old_path=row.path, new_path=str(path)
                )
                self._commit(moved, [event], (row.generation, row.offset))
                _log.info("source moved", source=row.source_id, old=row.path, new=str(path))
                row = moved
            if row.fingerprint_len < FINGERPRINT_BYTES and st.st_size > row.fingerprint_len:
                length = min(st.st_size, FINGERPRINT_BYTES)
                row = msgspec.structs.replace(
                    row, fingerprint=_fingerprint(fh, length), fingerprint_len=length
                )
                with self.db.write():
                    self._save(row)
            return row
        for row in by_path:
            if row.device is not None and (row.device, row.inode) != (st.st_dev, st.st_ino):
                return self._reset(row, path, st, fh, "replaced")
        return self._track(path, st, fh, store)

    def _track(
        self, path: Path, st: os.stat_result, fh: BinaryIO, store: Store
    ) -> SourceRow | None:
        fh.seek(0)
        head = fh.read(min(st.st_size, _HEAD_BYTES))
        if b"\n" not in head and len(head) < _HEAD_BYTES:
            return None  # nothing complete to capture yet; its session may not be known
        ref = store.session_of(path, decode_head(head))
        length = min(st.st_size, FINGERPRINT_BYTES)
        fingerprint = _fingerprint(fh, length)
        source_id = content_id("source", store.agent, st.st_dev, st.st_ino, fingerprint, str(path))
        # An inode that now belongs to this new file no longer identifies any older source.
        with self.db.write():
            self.db.conn.execute(
                "UPDATE capture_sources SET device = NULL, inode = NULL"
                " WHERE device = ? AND inode = ?",
                (st.st_dev, st.st_ino),
            )
        row = SourceRow(
            source_id=source_id,
            agent=store.agent,
            path=str(path),
            device=st.st_dev,
            inode=st.st_ino,
            fingerprint=fingerprint,
            fingerprint_len=length,
            generation=1,
            offset=0,
            session=ref.session,
            parent_session=ref.parent_session,
        )
        event = SourceFileTracked(
            agent=store.agent,
            source_id=source_id,
            path=str(path),
            device=st.st_dev,
            inode=st.st_ino,
            fingerprint=fingerprint,
            generation=1,
            session=ref.session,
            parent_session=ref.parent_session,
        )
        self._commit(row, [event], (1, 0))
        _log.info("source tracked", source=source_id, path=str(path), session=ref.session)
        return row

    def _reset(
        self, row: SourceRow, path: Path, st: os.stat_result, fh: BinaryIO, reason: str
    ) -> SourceRow:
        length = min(st.st_size, FINGERPRINT_BYTES)
        new = msgspec.structs.replace(
            row,
            path=str(path),
            device=st.st_dev,
            inode=st.st_ino,
            fingerprint=_fingerprint(fh, length),
            fingerprint_len=length,
            generation=row.generation + 1,
            offset=0,
        )
        event = SourceFileReset(
            source_id=row.source_id,
            path=str(path),
            reason=reason,  # type: ignore[arg-type]
            previous_offset=row.offset,
            new_generation=new.generation,
        )
        self._commit(new, [event], (row.generation, row.offset))
        _log.warning("source reset", source=row.source_id, path=str(path), reason=reason)
        return new

    # --- reading -----------------------------------------------------------------------

    def capture_file(self, path: Path, store: Store) -> FileResult:
        """Capture every complete line of ``path`` not yet captured."""
        for _attempt in range(5):
            try:
                return self._capture_once(path, store)
            except _Raced:
                _log.debug("source raced, retrying", path=str(path))
        return FileResult()

    def _capture_once(self, path: Path, store: Store) -> FileResult:
        try:
            fh = open(path, "rb")  # noqa: SIM115 (closed below)
        except (FileNotFoundError, NotADirectoryError):
            return FileResult()  # deleted: everything captured stays captured
        except OSError as exc:
            _log.warning("cannot open source", path=str(path), error=exc.strerror)
            return FileResult()
        with fh:
            st = os.fstat(fh.fileno())
            row = self._identify(path, st, fh, store)
            if row is None or st.st_size <= row.offset:
                return FileResult()
            return self._read(fh, st.st_size, row)

    def _line_event(self, row: SourceRow, offset: int, line: bytes, now: str) -> Event:
        try:
            _json.decode(line)
            ok = True
        except msgspec.DecodeError:
            ok = False
        count = 0
        if self.redact_secrets:
            line, count = redact(line, was_json=ok)
        return TranscriptLineCaptured(
            agent=row.agent,
            source_id=row.source_id,
            path=row.path,
            generation=row.generation,
            offset=offset,
            line=line,
            captured_at=now,
            session=row.session,
            json_ok=ok,
            redactions=count,
        )

    def _oversized(self, row: SourceRow, offset: int, length: int) -> Event:
        return CaptureErrorRecorded(
            agent=row.agent,
            source_id=row.source_id,
            path=row.path,
            offset=offset,
            length=length,
            kind="oversized",
            message=f"line of {length} bytes exceeds the {self.max_line_bytes}-byte limit",
            generation=row.generation,
        )

    def _read(self, fh: BinaryIO, end: int, row: SourceRow) -> FileResult:
        result = FileResult()
        fh.seek(row.offset)
        pos = row.offset  # file position of the next byte read
        line_start = row.offset  # file offset of buf[0]
        buf = b""
        skipping = False  # inside an oversized line, discarding until its newline
        events: list[Event] = []
        batch_bytes = lines = errors = 0
        now = utc_now()

        def flush() -> None:
            nonlocal row, events, batch_bytes, lines, errors, now
            if not events:
                return
            consumed = line_start - row.offset
            new = msgspec.structs.replace(
                row,
                offset=line_start,
                lines=row.lines + lines,
                bytes=row.bytes + consumed,
                errors=row.errors + errors,
            )
            self._commit(new, events, (row.generation, row.offset))
            result.lines += lines
            result.bytes += consumed
            result.errors += errors
            row = new
            events, batch_bytes, lines, errors = [], 0, 0, 0
            now = utc_now()
            self.on_batch(consumed)

        while pos < end:
            chunk = fh.read(min(_BLOCK, end - pos))
            if not chunk:
                break
            chunk_start = pos
            pos += len(chunk)
            if skipping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                line_end = chunk_start + cut + 1
                events.append(self._oversized(row, line_start, line_end - 1 - line_start))
                errors += 1
                line_start = line_end
                chunk = chunk[cut + 1 :]
                skipping = False
            buf = buf + chunk if buf else chunk
            parts = buf.split(b"\n")
            buf = parts.pop()
            for line in parts:
                if len(line) > self.max_line_bytes:
                    events.append(self._oversized(row, line_start, len(line)))
                    errors += 1
                else:
                    events.append(self._line_event(row, line_start, line, now))
                    lines += 1
                line_start += len(line) + 1
                batch_bytes += len(line) + 1
                if len(events) >= _BATCH_LINES or batch_bytes >= _BATCH_BYTES:
                    flush()
                    if self.should_stop():
                        result.stopped = True
                        return result
            if len(buf) > self.max_line_bytes:
                buf = b""
                skipping = True
        flush()
        return result


def _event_id(source_id: str, event: Event) -> str | None:
    """Content ids for what a byte range of a file says; lifecycle events are unique facts.

    A line is identified by where it was read, so re-reading a range cannot add it twice.
    ``SourceFileMoved`` and ``SourceFileReset`` may legitimately repeat with equal fields
    (a file moved back and forth); the tracking row's version check keeps them exactly-once.
    """
    if isinstance(event, TranscriptLineCaptured | CaptureErrorRecorded):
        kind = type(event).__name__
        return content_id(kind, source_id, event.generation, event.offset)
    if isinstance(event, SourceFileTracked):
        return content_id("tracked", source_id, event.generation)
    return None
