"""Capturing transcript files into the log exactly once.

Each file is a *source* with a row in ``capture_sources`` (its identity and committed offset).
A pass over a file stats it, decides whether it is new, moved, truncated or replaced, then
reads complete lines from the committed offset. Events and the sources' new rows are staged
and committed together, one transaction per batch of about a thousand lines, which may span
many small files; a batch commits only if no other process moved any of its sources on in
the meantime. Event ids are derived from (source, generation, offset), so even a repeated
read could not duplicate a line.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import msgspec
import structlog

from .._redact import redact, screen
from ..events import Database, EventLog, NewEvent, content_id, utc_now
from ..events.types import (
    CaptureErrorRecorded,
    Event,
    SourceFileMoved,
    SourceFileReset,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from ._store import Store, decode_head

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
FINGERPRINT_BYTES = 1024
_HEAD_BYTES = 1024 * 1024
_BLOCK = 4 * 1024 * 1024
_BATCH_LINES = 1000
_BATCH_BYTES = 8 * 1024 * 1024

_log = structlog.get_logger(__name__)
# Decoding to Raw validates the whole line without building Python objects.
_json = msgspec.json.Decoder(msgspec.Raw)


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


class Raced(Exception):
    """Another process moved a staged source on first; nothing of the batch was written."""


RACE_RETRIES = 5


def source_stream(source_id: str) -> str:
    """The log stream holding one source file's events."""
    return f"source:{source_id}"


def _same_file(path: str, st: os.stat_result) -> bool:
    """Whether ``path`` still names the file ``st`` describes."""
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


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
        # The batch being built: each staged source's row as the log last had it (None when
        # new), its row after the batch, and the events in append order.
        self._before: dict[str, SourceRow | None] = {}
        self._rows_after: dict[str, SourceRow] = {}
        self._events: list[NewEvent] = []
        self._staged_bytes = 0
        self._deferred = False

    # --- bookkeeping -------------------------------------------------------------------

    def _rows(
        self, where: str, args: tuple[object, ...], matches: Callable[[SourceRow], bool]
    ) -> list[SourceRow]:
        """Rows matching ``where`` (``matches`` is the same test in Python), as the staged
        batch will leave them."""
        sql = f"SELECT {_ROW_COLUMNS} FROM capture_sources WHERE {where}"
        with self.db.read():
            stored = [SourceRow(*r) for r in self.db.conn.execute(sql, args)]
        staged = self._rows_after
        return [r for r in stored if r.source_id not in staged] + [
            r for r in staged.values() if matches(r)
        ]

    def _rows_by_inode(self, device: int, inode: int) -> list[SourceRow]:
        return self._rows(
            "device = ? AND inode = ?",
            (device, inode),
            lambda r: (r.device, r.inode) == (device, inode),
        )

    def _rows_by_path(self, path: str) -> list[SourceRow]:
        return self._rows("path = ?", (path,), lambda r: r.path == path)

    def _save(self, row: SourceRow) -> None:
        marks = ", ".join("?" * len(SourceRow.__struct_fields__))
        self.db.conn.execute(
            f"INSERT OR REPLACE INTO capture_sources ({_ROW_COLUMNS}) VALUES ({marks})",
            msgspec.structs.astuple(row),
        )

    def _stage(
        self, row: SourceRow, events: list[Event], before: SourceRow | None, consumed: int = 0
    ) -> None:
        """Add ``events`` and ``row`` to the batch; commit it when it is full (or not deferred)."""
        if row.source_id not in self._before:
            self._before[row.source_id] = before
        self._rows_after[row.source_id] = row
        stream = source_stream(row.source_id)
        self._events.extend(NewEvent(stream, e, _event_id(row.source_id, e)) for e in events)
        self._staged_bytes += consumed
        if (
            not self._deferred
            or len(self._events) >= _BATCH_LINES
            or self._staged_bytes >= _BATCH_BYTES
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the staged batch: its events and its sources' rows, in one transaction."""
        if not self._rows_after:
            return
        consumed = self._staged_bytes
        with self.db.write() as conn:
            for source_id, before in self._before.items():
                row = conn.execute(
                    "SELECT generation, offset FROM capture_sources WHERE source_id = ?",
                    (source_id,),
                ).fetchone()
                expected = None if before is None else (before.generation, before.offset)
                if (tuple(row) if row else None) != expected:
                    raise Raced(source_id)
            # An inode newly held by a staged source no longer identifies any other one.
            for row in self._rows_after.values():
                before = self._before[row.source_id]
                moved_inode = before is None or (before.device, before.inode) != (
                    row.device,
                    row.inode,
                )
                if row.device is not None and moved_inode:
                    conn.execute(
                        "UPDATE capture_sources SET device = NULL, inode = NULL"
                        " WHERE device = ? AND inode = ? AND source_id != ?",
                        (row.device, row.inode, row.source_id),
                    )
            self.log.append(self._events)
            for row in self._rows_after.values():
                self._save(row)
        self.discard()
        self.on_batch(consumed)

    def discard(self) -> None:
        """Drop the staged batch (after a race, or when nothing may be written)."""
        self._before.clear()
        self._rows_after.clear()
        self._events = []
        self._staged_bytes = 0

    @contextmanager
    def batching(self) -> Iterator[None]:
        """Let batches span files until this block ends (then whatever is staged commits)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
        self.flush()

    # --- identity ----------------------------------------------------------------------

    def _identify(
        self, path: Path, st: os.stat_result, fh: BinaryIO, store: Store
    ) -> SourceRow | None:
        with self.db.read():
            by_inode = self._rows_by_inode(st.st_dev, st.st_ino)
            by_path = self._rows_by_path(str(path))
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
            if row.path != str(path) and _same_file(row.path, st):
                pass  # another name (symlink, hard link) of a file already tracked: not a move
            elif row.path != str(path):
                moved = msgspec.structs.replace(row, path=str(path))
                event = SourceFileMoved(
                    source_id=row.source_id, old_path=row.path, new_path=str(path)
                )
                self._stage(moved, [event], row)
                _log.info("source moved", source=row.source_id, old=row.path, new=str(path))
                row = moved
            if row.fingerprint_len < FINGERPRINT_BYTES and st.st_size > row.fingerprint_len:
                length = min(st.st_size, FINGERPRINT_BYTES)
                grown = msgspec.structs.replace(
                    row, fingerprint=_fingerprint(fh, length), fingerprint_len=length
                )
                self._stage(grown, [], row)
                row = grown
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
        self._stage(row, [event], None)
        _log.debug("source tracked", source=source_id, path=str(path), session=ref.session)
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
        self._stage(new, [event], row)
        _log.warning("source reset", source=row.source_id, path=str(path), reason=reason)
        return new

    # --- reading -----------------------------------------------------------------------

    def capture_file(self, path: Path, store: Store) -> FileResult:
        """Capture every complete line of ``path`` not yet captured."""
        if self._deferred:
            return self._capture_once(path, store)
        for _attempt in range(RACE_RETRIES):
            try:
                return self._capture_once(path, store)
            except Raced:
                self.discard()
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

    def _line_event(
        self, row: SourceRow, offset: int, line: bytes, now: str, flagged: bool
    ) -> Event:
        try:
            _json.decode(line)
            ok = True
        except msgspec.DecodeError:
            ok = False
        count = 0
        if flagged:
            line, count = redact(line, was_json=ok, screened=True)
        return TranscriptLineCaptured(
            agent=row.agent,
            source_id=row.source_id,
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
            self._stage(new, events, row, consumed)
            result.lines += lines
            result.bytes += consumed
            result.errors += errors
            row = new
            events, batch_bytes, lines, errors = [], 0, 0, 0
            now = utc_now()

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
            complete = buf.rfind(b"\n") + 1
            # Screen the whole block for secrets at once; only flagged lines are redacted.
            flags = screen(buf, complete) if self.redact_secrets else []
            flag = 0
            at = 0  # offset of the current line in buf
            parts = buf.split(b"\n")
            buf = parts.pop()
            for line in parts:
                end = at + len(line)
                flagged = False
                while flag < len(flags) and flags[flag] < end + 1:
                    flagged = flagged or flags[flag] >= at
                    flag += 1
                if len(line) > self.max_line_bytes:
                    events.append(self._oversized(row, line_start, len(line)))
                    errors += 1
                else:
                    events.append(self._line_event(row, line_start, line, now, flagged))
                    lines += 1
                at = end + 1
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


def _compact(source_id: str) -> str:
    """A source id (32 hex digits) in 22 base64url characters: ids are stored twice per line
    (the row and its unique index), so every character counts 80,000 times per 40,000 lines."""
    try:
        return base64.urlsafe_b64encode(bytes.fromhex(source_id)).rstrip(b"=").decode()
    except ValueError:
        return source_id


def _event_id(source_id: str, event: Event) -> str | None:
    """Deterministic ids for what a byte range of a file says; lifecycle events are unique facts.

    A line (or a capture error) is identified by where it was read: its source (itself a
    content hash of the file's identity), generation and offset. Re-reading a range cannot add
    it twice, and ids of one file sort together, which keeps the unique index's inserts local.
    ``SourceFileMoved`` and ``SourceFileReset`` may legitimately repeat with equal fields (a
    file moved back and forth); the batch's version check keeps them exactly-once.
    """
    if isinstance(event, TranscriptLineCaptured):
        return f"l{_compact(source_id)}.{event.generation}.{event.offset:x}"
    if isinstance(event, CaptureErrorRecorded):
        return f"e{_compact(source_id)}.{event.generation}.{event.offset:x}"
    if isinstance(event, SourceFileTracked):
        return content_id("tracked", source_id, event.generation)
    return None
