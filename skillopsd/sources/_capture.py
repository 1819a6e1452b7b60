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
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from .._logging import get_logger
from .._redact import redact, screen
from ..events import MAX_PAYLOAD, Database, EventLog, NewEvent, content_id, utc_now
from ..events.types import (
    CaptureErrorRecorded,
    Event,
    SourceFileMoved,
    SourceFileReset,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from ._access import (
    LINK_KINDS,
    Unreachable,
    broken_link,
    open_problem,
    outside_link,
    real_path,
)
from ._store import (
    HEAD_LINES,
    SessionRef,
    Store,
    decode_head,
    new_source_id,
    open_regular,
    path_text,
    text_path,
)

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
# What opening a path as a regular file proves over (not a folder's listing, not a document's
# content: those are over when the listing or the decoding succeeds).
_OPEN_PROBLEMS = ("not_regular", "unreadable", "read_error", *LINK_KINDS)
# The largest --max-line-bytes: a document may be 16 times it (_documents), and every stored
# payload must stay readable under the events' MAX_PAYLOAD.
MAX_LINE_LIMIT = MAX_PAYLOAD // 16
FINGERPRINT_BYTES = 1024
_HEAD_BYTES = 1024 * 1024
_FIRST_HEAD_BYTES = 64 * 1024
_BLOCK = 4 * 1024 * 1024
_BATCH_LINES = 1000
_BATCH_BYTES = 8 * 1024 * 1024
# The most bytes of chunks _read keeps for block digests (a batch's and a chunk either side).
_HELD_BYTES = _BATCH_BYTES + 2 * _BLOCK
# The committed bytes just before a source's offset, digested: a file rewritten under the
# same inode with the same head is noticed when these no longer match.
_TAIL_BYTES = 4096
# A file that keeps growing while it is read is followed to its end this many times per pass.
_GROWTH_ROUNDS = 64
# Bound on re-reading raced files in one pass; each race means another writer made progress.
_RACE_ROUNDS = 10_000
PROBLEMS_STREAM = "capture:problems"

_log = get_logger(__name__)
# Decoding to Raw validates the whole line without building Python objects.
_json = msgspec.json.Decoder(msgspec.Raw)

ProblemKind = Literal["unreadable", "not_regular", "read_error", "unlistable"]


_Blob = bytes  # the field ``bytes`` below shadows the type inside the class


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
    seen_size: int = 0  # the file's size when last seen
    lost: int = 0  # bytes never captured because the file vanished first
    tail_digest: str = ""  # _tail_digest of the committed bytes just before ``offset``
    doc_state: _Blob = b""  # a document source's captured state (sources/_documents.py)
    blocks: _Blob = b""  # _block_digests of the committed bytes (a line source's)


_ROW_COLUMNS = ", ".join(SourceRow.__struct_fields__)


class FileResult(msgspec.Struct):
    """What one pass over one file captured."""

    lines: int = 0
    bytes: int = 0
    errors: int = 0
    stopped: bool = False


class Problem(msgspec.Struct, frozen=True):
    """A file or folder capture cannot read right now (recorded once until it can)."""

    path: str
    kind: str
    agent: str
    message: str


def source_stream(source_id: str) -> str:
    """The log stream holding one source file's events."""
    return f"source:{source_id}"


def _same_file(path: str, st: os.stat_result) -> bool:
    """Whether stored ``path`` still names the file ``st`` describes."""
    try:
        other = os.stat(text_path(path))
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _fingerprint(fh: BinaryIO, length: int) -> str:
    fh.seek(0)
    return hashlib.sha256(fh.read(length)).hexdigest()[:32]


def _tail_digest(data: bytes) -> str:
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()[:32]}"


# A line source's committed bytes are digested in blocks of BLOCK_BYTES (the last one
# partial, up to the offset): 8 bytes of sha256 each, 128 bytes per MiB of transcript. Before
# a file is read on, a sample of them is checked (the last block, then others in turn, up to
# CHECK_BYTES a pass), so a rewrite anywhere before the offset that keeps the first bytes and
# the bytes just before the offset is still noticed, at a bounded cost per pass: a file of
# up to CHECK_BYTES is checked whole every pass, a larger one within size / CHECK_BYTES passes.
BLOCK_BYTES = 64 * 1024
CHECK_BYTES = 128 * 1024
_DIGEST = 8


def _block_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:_DIGEST]


def _blocks_covering(offset: int) -> int:
    return -(-offset // BLOCK_BYTES)


def _block_digests(
    fd: int, blocks: bytes, old: int, new: int, held: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """``blocks`` (the digests of bytes ``[0, old)``) extended to cover ``[0, new)``.

    The complete blocks below ``old`` are kept; the partial one and those after are digested
    from ``held`` (the chunks just read, as ``(file offset, bytes)``, in order) where it holds
    them, else read back (the page cache holds them). Digests missing or of another length (a
    source tracked before digests were kept) are taken from the file as it is now.
    """
    keep = old // BLOCK_BYTES
    if len(blocks) != _DIGEST * _blocks_covering(old):
        keep = 0
    out = bytearray(blocks[: _DIGEST * keep])
    start = keep * BLOCK_BYTES
    while start < new:
        end = min(start + BLOCK_BYTES, new)
        digest = _held_digest(held, start, end)
        if digest is not None:
            out += digest
            start = end
            continue
        data = os.pread(fd, end - start, start)
        if not data:
            break  # cut short meanwhile: the next pass sees it truncated
        out += _block_digest(data)
        start += len(data)
    return bytes(out)


def _held_digest(held: Sequence[tuple[int, bytes]], start: int, end: int) -> bytes | None:
    """:func:`_block_digest` of the file's bytes ``[start, end)`` taken from the chunks in
    ``held`` (contiguous, in order) without copying them; None unless they hold them all."""
    if not held or start < held[0][0]:
        return None
    h = hashlib.sha256()
    at = start
    for offset, chunk in held:
        stop = offset + len(chunk)
        if stop <= at:
            continue
        if offset > at:
            return None
        upto = min(stop, end)
        h.update(memoryview(chunk)[at - offset : upto - offset])
        at = upto
        if at >= end:
            return h.digest()[:_DIGEST]
    return None


def _json_state(line: bytes) -> bool:
    """Whether ``line`` is one JSON value the deriver can decode (valid UTF-8, not too deep).

    A line that is not is still stored as read, with ``json_ok`` false; redaction then works
    on its bytes, which never needs to decode it.
    """
    try:
        _json.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return False
    if line.isascii():
        return True
    try:
        line.decode("utf-8")  # Raw does not check the UTF-8 inside strings
    except UnicodeDecodeError:
        return False
    return True


def _redact(line: bytes, ok: bool) -> tuple[bytes, int]:
    """``redact``, falling back to masking the raw bytes if the JSON-aware path fails.

    Never the unredacted line: the byte-level pass needs no decoding and cannot fail on
    what the JSON pass chokes on (a line nested deeper than the interpreter recurses).
    """
    try:
        return redact(line, was_json=ok, screened=True)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return redact(line, was_json=False, screened=True)


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
        confine: Sequence[tuple[str, Path]] | None = None,
    ) -> None:
        self.db = db
        # The agents' folders as (agent, resolved path): a symbolic link to a file outside
        # them is a problem, never read (evil.jsonl -> /etc/passwd). None: no confinement
        # (ingest reads what its user names).
        self.confine = None if confine is None else [(a, real_path(p)) for a, p in confine]
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
        self._staged_bytes: dict[str, int] = {}
        # Per staged source, the lines, bytes and errors its staged events stand for; added
        # to ``stored`` only when they commit (a batch that lost a race to another writer
        # stored nothing of it: those lines are counted when read again, once).
        self._staged_counts: dict[str, tuple[int, int, int]] = {}
        # What this capturer has stored, in all: what "captured N lines" reports.
        self.stored = FileResult()
        self._deferred = False
        # Per source, the block _blocks_match checks first on its next pass (in turn).
        self._turns: dict[str, int] = {}
        # The file being captured, and each staged source's file: raced sources are re-read.
        self._current: tuple[Path, Store] | None = None
        self._files: dict[str, tuple[Path, Store]] = {}
        self._raced: set[str] = set()
        self._retry: dict[Path, Store] = {}
        self.races = 0  # sources dropped from a batch because another writer was first
        # Documents that did not decode: path -> "<size>:<mtime_ns>" when last seen so.
        self.invalid_documents: dict[str, str] = {}

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
        self,
        row: SourceRow,
        events: list[Event],
        before: SourceRow | None,
        consumed: int = 0,
        counts: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """Add ``events`` and ``row`` to the batch; commit it when it is full (or not deferred).

        ``counts``: the (lines, bytes, errors) the events stand for, added to ``stored``
        when they commit.
        """
        if any(counts):
            lines, size, errors = self._staged_counts.get(row.source_id, (0, 0, 0))
            self._staged_counts[row.source_id] = (
                lines + counts[0],
                size + counts[1],
                errors + counts[2],
            )
        if row.source_id not in self._before:
            self._before[row.source_id] = before
        self._rows_after[row.source_id] = row
        if self._current is not None:
            self._files.setdefault(row.source_id, self._current)
        stream = source_stream(row.source_id)
        ids = _event_ids(row.source_id, events)
        self._events.extend(
            [NewEvent(stream, e, event_id) for e, event_id in zip(events, ids, strict=True)]
        )
        self._staged_bytes[row.source_id] = self._staged_bytes.get(row.source_id, 0) + consumed
        if (
            not self._deferred
            or len(self._events) >= _BATCH_LINES
            or sum(self._staged_bytes.values()) >= _BATCH_BYTES
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the staged batch: its events and its sources' rows, in one transaction.

        A source another process moved on since it was staged (a race) is dropped from the
        batch, which commits without it; its file is queued to be read again from the offset
        the other process committed (:meth:`retry_raced`).
        """
        if not self._rows_after:
            return
        with self.db.write() as conn:
            raced = set()
            for source_id, before in self._before.items():
                # The tail digest tells apart two passes over a document ending at one size.
                row = conn.execute(
                    "SELECT generation, offset, tail_digest FROM capture_sources"
                    " WHERE source_id = ?",
                    (source_id,),
                ).fetchone()
                expected = (
                    None
                    if before is None
                    else (before.generation, before.offset, before.tail_digest)
                )
                if (tuple(row) if row else None) != expected:
                    raced.add(source_id)
            if raced:
                self._drop(raced)
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
            if self._events:
                self.log.append(self._events)
            for row in self._rows_after.values():
                self._save(row)
        for lines, size, errors in self._staged_counts.values():
            self.stored.lines += lines
            self.stored.bytes += size
            self.stored.errors += errors
        consumed = sum(self._staged_bytes.values())
        self.discard()
        self.on_batch(consumed)

    def _drop(self, raced: set[str]) -> None:
        """Take raced sources out of the staged batch and queue their files for a re-read."""
        streams = {source_stream(s) for s in raced}
        self._events = [e for e in self._events if e.stream not in streams]
        for source_id in raced:
            self._before.pop(source_id, None)
            self._rows_after.pop(source_id, None)
            self._staged_bytes.pop(source_id, None)
            self._staged_counts.pop(source_id, None)
            file = self._files.pop(source_id, None)
            if file is not None:
                self._retry[file[0]] = file[1]
        self._raced |= raced
        self.races += len(raced)
        _log.debug("sources raced, re-reading", sources=sorted(raced))

    def discard(self) -> None:
        """Drop the staged batch (when nothing may be written)."""
        self._before.clear()
        self._rows_after.clear()
        self._events = []
        self._staged_bytes.clear()
        self._staged_counts.clear()
        self._files.clear()

    @contextmanager
    def batching(self) -> Iterator[None]:
        """Let batches span files until this block ends (then whatever is staged commits)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
        self.flush()

    def retry_raced(self) -> FileResult:
        """Read again the files whose batch lost a race, until none does."""
        total = FileResult()
        for _round in range(_RACE_ROUNDS):
            if not self._retry or self.should_stop():
                break
            files, self._retry = self._retry, {}
            self._raced.clear()
            for path, store in files.items():
                result = self._capture_once(path, store)
                total.lines += result.lines
                total.bytes += result.bytes
                total.errors += result.errors
                self.flush()
        else:
            _log.warning("sources still racing; left for the next pass", files=len(self._retry))
            self._retry.clear()
        return total

    # --- problems ----------------------------------------------------------------------

    def problem(self, path: str | os.PathLike[str], agent: str, kind: str, message: str) -> bool:
        """Record that ``path`` cannot be captured (once, until it can); True if new."""
        text = path_text(path)
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO capture_problems (path, kind, agent, message)"
                " VALUES (?, ?, ?, ?)",
                (text, kind, agent, message),
            )
            if not conn.changes():
                return False
            self.stored.errors += 1
            event = CaptureErrorRecorded(
                agent=agent,
                source_id="",
                path=text,
                offset=0,
                length=0,
                kind=kind,
                message=message,
            )
            self.log.append([NewEvent(PROBLEMS_STREAM, event, None)])
        _log.warning("cannot capture", path=text, kind=kind, problem=message)
        return True

    def _resolved(self, path: Path) -> None:
        """``path`` was opened as a regular file: its problems of opening it are over."""
        self.resolved(path, *_OPEN_PROBLEMS)

    def resolved(self, path: Path, *kinds: str) -> None:
        """``path``'s open problems of these kinds are over."""
        text = path_text(path)
        marks = ", ".join("?" * len(kinds))
        with self.db.read() as conn:
            open_ = conn.execute(
                f"SELECT 1 FROM capture_problems WHERE path = ? AND kind IN ({marks})",
                (text, *kinds),
            ).fetchone()
        if open_ is not None:
            with self.db.write() as conn:
                conn.execute(
                    f"DELETE FROM capture_problems WHERE path = ? AND kind IN ({marks})",
                    (text, *kinds),
                )
            _log.info("capturable again", path=text)

    def settle_unlistable(self, still: set[str]) -> None:
        """After a full walk: folders not in ``still`` could be listed, so are no problem."""
        with self.db.read() as conn:
            stored = {
                r[0]
                for r in conn.execute("SELECT path FROM capture_problems WHERE kind='unlistable'")
            }
        gone = stored - {path_text(p) for p in still}
        if gone:
            with self.db.write() as conn:
                for text in gone:
                    conn.execute(
                        "DELETE FROM capture_problems WHERE path = ? AND kind = 'unlistable'",
                        (text,),
                    )

    def check_vanished(self) -> int:
        """Record sources whose file is gone before it was read to its end (once each)."""
        with self.db.read() as conn:
            rows = [
                SourceRow(*r)
                for r in conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM capture_sources"
                    " WHERE lost = 0 AND seen_size > offset"
                )
            ]
        found = 0
        for row in rows:
            try:
                os.stat(text_path(row.path))
                continue  # still there (if replaced, the next pass notices)
            except (FileNotFoundError, NotADirectoryError):
                pass
            except OSError:
                continue
            length = row.seen_size - row.offset
            event = CaptureErrorRecorded(
                agent=row.agent,
                source_id=row.source_id,
                path=row.path,
                offset=row.offset,
                length=length,
                kind="vanished",
                message=f"file gone with {length} of its {row.seen_size} bytes not captured",
                generation=row.generation,
            )
            self._stage(msgspec.structs.replace(row, lost=length), [event], row)
            _log.warning("source vanished", path=row.path, lost_bytes=length)
            found += 1
        self.flush()
        return found

    # --- identity ----------------------------------------------------------------------

    def _identify(
        self, path: Path, st: os.stat_result, fh: BinaryIO, store: Store
    ) -> SourceRow | None:
        text = path_text(path)
        with self.db.read():
            by_inode = self._rows_by_inode(st.st_dev, st.st_ino)
            by_path = self._rows_by_path(text)
        for row in by_inode:
            same_start = st.st_size >= row.fingerprint_len and (
                _fingerprint(fh, row.fingerprint_len) == row.fingerprint
            )
            if st.st_size < row.offset:
                return self._reset(row, path, st, fh, "truncated")
            if not same_start:
                if row.path == text:
                    return self._reset(row, path, st, fh, "replaced")
                continue  # an inode reused by an unrelated new file
            if not self._tail_matches(fh, row) or not self._blocks_match(fh, row):
                return self._reset(row, path, st, fh, "replaced")
            if row.path != text and _same_file(row.path, st):
                pass  # another name (symlink, hard link) of a file already tracked: not a move
            elif row.path != text:
                moved = msgspec.structs.replace(row, path=text)
                event = SourceFileMoved(source_id=row.source_id, old_path=row.path, new_path=text)
                self._stage(moved, [event], row)
                _log.info("source moved", source=row.source_id, old=row.path, new=text)
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

    def _tail_matches(self, fh: BinaryIO, row: SourceRow) -> bool:
        """Whether the bytes before the committed offset are still those committed."""
        if not row.tail_digest or not row.offset:
            return True  # recorded before digests were kept
        length = int(row.tail_digest.partition(":")[0])
        data = os.pread(fh.fileno(), length, row.offset - length)
        return _tail_digest(data) == row.tail_digest

    def _blocks_match(self, fh: BinaryIO, row: SourceRow) -> bool:
        """Whether a sample of the committed blocks still has its digests: the last block
        (partial) and, in turn from pass to pass, others, up to CHECK_BYTES."""
        count = _blocks_covering(row.offset)
        if not count or len(row.blocks) != _DIGEST * count:
            return True  # recorded before digests were kept (taken at the next read)
        # A new process starts anywhere: restarts do not check the same blocks every time.
        turn = self._turns.get(row.source_id)
        if turn is None:
            turn = random.randrange(count)
        budget = CHECK_BYTES
        fd = fh.fileno()
        last = count - 1
        others = [b for b in ((turn + i) % count for i in range(count)) if b != last]
        for step, block in enumerate([last, *others]):
            if budget <= 0:
                self._turns[row.source_id] = (turn + step - 1) % count
                return True
            start = block * BLOCK_BYTES
            data = os.pread(fd, min(BLOCK_BYTES, row.offset - start), start)
            if _block_digest(data) != row.blocks[_DIGEST * block : _DIGEST * (block + 1)]:
                return False
            budget -= len(data)
        self._turns[row.source_id] = turn
        return True

    def _track(
        self, path: Path, st: os.stat_result, fh: BinaryIO, store: Store
    ) -> SourceRow | None:
        fh.seek(0)
        head = _read_head(fh, st.st_size)
        if b"\n" not in head and len(head) < _HEAD_BYTES:
            return None  # nothing complete to capture yet; its session may not be known
        ref = store.session_of(path, decode_head(head))
        # A session named after a file name that is not UTF-8 is escaped like the path.
        session, parent = path_text(ref.session), path_text(ref.parent_session)
        text = path_text(path)
        length = min(st.st_size, FINGERPRINT_BYTES)
        fingerprint = _fingerprint(fh, length)
        source_id = new_source_id(store.agent, st.st_dev, st.st_ino, fingerprint, text)
        row = SourceRow(
            source_id=source_id,
            agent=store.agent,
            path=text,
            device=st.st_dev,
            inode=st.st_ino,
            fingerprint=fingerprint,
            fingerprint_len=length,
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
        self._stage(row, [event], None)
        _log.debug("source tracked", source=source_id, path=text, session=session)
        return row

    def _reset(
        self, row: SourceRow, path: Path, st: os.stat_result, fh: BinaryIO, reason: str
    ) -> SourceRow:
        length = min(st.st_size, FINGERPRINT_BYTES)
        text = path_text(path)
        new = msgspec.structs.replace(
            row,
            path=text,
            device=st.st_dev,
            inode=st.st_ino,
            fingerprint=_fingerprint(fh, length),
            fingerprint_len=length,
            generation=row.generation + 1,
            offset=0,
            tail_digest="",
            blocks=b"",
        )
        event = SourceFileReset(
            source_id=row.source_id,
            path=text,
            reason=reason,  # type: ignore[arg-type]
            previous_offset=row.offset,
            new_generation=new.generation,
        )
        self._stage(new, [event], row)
        _log.warning("source reset", source=row.source_id, path=text, reason=reason)
        return new

    # --- reading -----------------------------------------------------------------------

    def capture_file(self, path: Path, store: Store) -> FileResult:
        """Capture every complete line of ``path`` not yet captured.

        Outside :meth:`batching`, files whose batch raced another writer are read again
        before returning; inside, when the batching block's caller calls :meth:`retry_raced`.
        """
        result = self._capture_once(path, store)
        if not self._deferred:
            again = self.retry_raced()
            result.lines += again.lines
            result.bytes += again.bytes
            result.errors += again.errors
        return result

    def _link(self, path: Path, agent: str) -> FileResult | None:
        """What to do with ``path`` if it is a symbolic link under confinement: None to read
        it, else the result of not reading it (a problem recorded, or nothing to do)."""
        if self.confine is None or not os.path.islink(path):
            return None
        broken = broken_link(path)
        if broken is not None:
            return self._link_problem(path, agent, broken)
        target = real_path(path)
        inside = [(a, root) for a, root in self.confine if target.is_relative_to(root)]
        if not inside:
            outside = outside_link(target, "the agents' folders")
            return self._link_problem(path, agent, outside)
        from ._registry import STORES  # the stores build on this module

        if any(STORES[a].claims(target.relative_to(root)) for a, root in inside):
            # A transcript the walk reaches under its own name is read there; read through
            # the link as well, its lines would be stored twice (or the file seen moving
            # between two names on every pass). Followed once: by its own name.
            return FileResult()
        return None  # inside the folders, reached only through the link: read through it

    def _link_problem(self, path: Path, agent: str, problem: Unreachable) -> FileResult:
        """Record ``problem`` of the link ``path``; a kind it had before is over (a dangling
        link made a loop, or a loop recorded as dangling before loops were told apart)."""
        self.resolved(path, *(k for k in LINK_KINDS if k != problem.kind))
        return FileResult(errors=int(self.problem(path, agent, problem.kind, problem.message)))

    def settle_links(self) -> None:
        """After a full walk: a link problem whose link is gone (or fixed) is over."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT path FROM capture_problems WHERE kind IN (?, ?, ?)",
                LINK_KINDS,
            ).fetchall()
        over = [t for (t,) in rows if isinstance(t, str) and not os.path.islink(text_path(t))]
        if over:
            with self.db.write() as conn:
                conn.executemany(
                    "DELETE FROM capture_problems WHERE path = ? AND kind IN (?, ?, ?)",
                    [(t, *LINK_KINDS) for t in over],
                )

    def _capture_once(self, path: Path, store: Store) -> FileResult:
        linked = self._link(path, store.agent)
        if linked is not None:
            return linked
        try:
            fh = open_regular(path)
        except (FileNotFoundError, NotADirectoryError):
            return FileResult()  # deleted: everything captured stays captured
        except OSError as exc:  # a FIFO or device, a file it may not read
            why = open_problem(exc)
            return FileResult(errors=int(self.problem(path, store.agent, why.kind, why.message)))
        self._current = (path, store)
        try:
            with fh:
                self._resolved(path)
                return self._capture_open(fh, path, store)
        except OSError as exc:  # an I/O error mid-read: what was staged is complete lines
            message = f"read failed: {exc.strerror or exc}"
            return FileResult(errors=int(self.problem(path, store.agent, "read_error", message)))
        finally:
            self._current = None

    def _capture_open(self, fh: BinaryIO, path: Path, store: Store) -> FileResult:
        shape = store.document(path)
        if shape is not None:
            from ._documents import capture_document  # it builds on this module

            return capture_document(self, fh, path, store, shape)
        st = os.fstat(fh.fileno())
        row = self._identify(path, st, fh, store)
        if row is None or row.source_id in self._raced:
            return FileResult()  # nothing complete yet, or queued to be read again
        if row.seen_size != st.st_size or row.lost:
            # Size as last seen (and a vanished file back again): status tells lag and loss.
            before = self._rows_after.get(row.source_id, row)
            row = msgspec.structs.replace(row, seen_size=st.st_size, lost=0)
            if st.st_size <= row.offset:
                self._stage(row, [], before)
        if st.st_size <= row.offset:
            return FileResult()
        tail = b""
        if row.offset:
            length = min(row.offset, _TAIL_BYTES)
            tail = os.pread(fh.fileno(), length, row.offset - length)
        return self._read(fh, st.st_size, row, tail)

    def _line_event(
        self, row: SourceRow, offset: int, line: bytes, now: str, flagged: bool
    ) -> Event:
        ok = _json_state(line)
        count = 0
        if flagged:
            line, count = _redact(line, ok)
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

    def _read(self, fh: BinaryIO, size: int, row: SourceRow, tail: bytes) -> FileResult:
        """Read complete lines from ``row.offset`` to the end of the file, however large.

        ``tail`` holds the bytes just before the offset; it is carried along so that every
        committed offset gets the digest of the bytes before it.
        """
        result = FileResult()
        fh.seek(row.offset)
        pos = row.offset  # file position of the next byte read
        end = size  # read up to here; moved on if the file grew meanwhile
        line_start = row.offset  # file offset of buf[0] (or of the oversized line skipped)
        buf = b""
        prev = tail  # the last _TAIL_BYTES before buf[0]
        skipping = False  # inside an oversized line, discarding until its newline
        skip_prev = b""
        events: list[Event] = []
        batch_bytes = lines = errors = 0
        now = utc_now()
        source_id = row.source_id
        # Locals for the loop over lines (run once per line of every transcript); the fields
        # of a line's event that stay the same while one file is read.
        agent, generation, session = row.agent, row.generation, row.session
        max_line = self.max_line_bytes
        append = events.append
        held: list[tuple[int, bytes]] = []  # the chunks read since the offset's block began
        held_bytes = [0]  # their size (a cell: flush() updates it)
        json_state = _json_state
        Captured = TranscriptLineCaptured

        def flush(before: bytes) -> bool:
            """Stage what was read; False when the source raced (stop reading it)."""
            nonlocal row, events, batch_bytes, lines, errors, now
            if not events:
                return True
            consumed = line_start - row.offset
            new = msgspec.structs.replace(
                row,
                offset=line_start,
                lines=row.lines + lines,
                bytes=row.bytes + consumed,
                errors=row.errors + errors,
                seen_size=max(row.seen_size, end),
                tail_digest=_tail_digest(before[-_TAIL_BYTES:]),
                blocks=_block_digests(fh.fileno(), row.blocks, row.offset, line_start, held),
            )
            # Chunks wholly before the new offset's block are never digested again.
            base = line_start - line_start % BLOCK_BYTES
            while held and held[0][0] + len(held[0][1]) <= base:
                held_bytes[0] -= len(held.pop(0)[1])
            self._stage(
                new,
                events,
                self._rows_after.get(source_id, row),
                consumed,
                (lines, consumed, errors),
            )
            result.lines += lines
            result.bytes += consumed
            result.errors += errors
            row = new
            events, batch_bytes, lines, errors = [], 0, 0, 0
            now = utc_now()
            return source_id not in self._raced

        for _round in range(_GROWTH_ROUNDS):
            while pos < end:
                chunk = fh.read(min(_BLOCK, end - pos))
                if not chunk:
                    break
                chunk_start = pos
                pos += len(chunk)
                # Held for the block digests of the next flush (the bytes were just read; not
                # read back). Bounded: an oversized line being skipped is read back instead.
                held.append((chunk_start, chunk))
                held_bytes[0] += len(chunk)
                while held_bytes[0] > _HELD_BYTES:
                    held_bytes[0] -= len(held.pop(0)[1])
                if skipping:
                    cut = chunk.find(b"\n")
                    if cut < 0:
                        prev = (prev + chunk)[-_TAIL_BYTES:]
                        continue
                    line_end = chunk_start + cut + 1
                    events.append(self._oversized(row, line_start, line_end - 1 - line_start))
                    errors += 1
                    prev = (prev + chunk[: cut + 1])[-_TAIL_BYTES:]
                    line_start = line_end
                    chunk = chunk[cut + 1 :]
                    skipping = False
                data = buf + chunk if buf else chunk
                complete = data.rfind(b"\n") + 1
                # Screen the whole block for secrets at once; only flagged lines are redacted.
                flags = screen(data, complete) if self.redact_secrets else []
                flag = 0
                # The next flag's offset (past every line when none is left): a line holds
                # one when it is at most its end.
                next_flag = flags[0] if flags else complete
                find = data.index
                at = 0  # offset of the current line in data
                while at < complete:
                    line_end = find(b"\n", at)
                    length = line_end - at
                    if next_flag <= line_end:
                        flagged = False
                        while flag < len(flags) and flags[flag] <= line_end:
                            flagged = flagged or flags[flag] >= at
                            flag += 1
                        next_flag = flags[flag] if flag < len(flags) else complete
                        if length > max_line:
                            append(self._oversized(row, line_start, length))
                            errors += 1
                        else:
                            line = data[at:line_end]
                            append(self._line_event(row, line_start, line, now, flagged))
                            lines += 1
                    elif length > max_line:
                        append(self._oversized(row, line_start, length))
                        errors += 1
                    else:
                        # The hot path (no secret): _line_event without a call per line.
                        line = data[at:line_end]
                        append(
                            Captured(
                                agent=agent,
                                source_id=source_id,
                                generation=generation,
                                offset=line_start,
                                line=line,
                                captured_at=now,
                                session=session,
                                json_ok=json_state(line),
                            )
                        )
                        lines += 1
                    at = line_end + 1
                    line_start += length + 1
                    batch_bytes += length + 1
                    if len(events) >= _BATCH_LINES or batch_bytes >= _BATCH_BYTES:
                        before = (prev + data[max(0, at - _TAIL_BYTES) : at])[-_TAIL_BYTES:]
                        if not flush(before):
                            return result
                        append = events.append  # flush() started a new list
                        if self.should_stop():
                            result.stopped = True
                            return result
                prev = (prev + data[max(0, complete - _TAIL_BYTES) : complete])[-_TAIL_BYTES:]
                buf = data[complete:]
                if len(buf) > self.max_line_bytes:
                    skip_prev = prev  # the bytes before the oversized line, for its offset
                    prev = (prev + buf)[-_TAIL_BYTES:]
                    buf = b""
                    skipping = True
            # Followed to the size seen at the start: read on if the file grew meanwhile.
            grown = os.fstat(fh.fileno()).st_size
            if grown <= end or pos < end:
                break
            end = grown
        flush(skip_prev if skipping else prev)
        return result


def _read_head(fh: BinaryIO, size: int) -> bytes:
    """The file's first bytes that decode_head reads: its first lines, up to _HEAD_BYTES.

    A first read of 64 KiB usually holds them all; reading the whole 1 MiB every time read
    most of the corpus twice (its files average 1 MB).
    """
    want = min(size, _HEAD_BYTES)
    head = fh.read(min(want, _FIRST_HEAD_BYTES))
    if len(head) < want and head.count(b"\n") < HEAD_LINES:
        head += fh.read(want - len(head))
    return head


def peek_session(path: Path, store: Store) -> SessionRef | None:
    """The session a file not yet tracked would be tracked under, read from its head as
    :meth:`Capturer._track` reads it; None when that cannot be told before capturing it (a
    document, a file with no complete line, or one that cannot be read)."""
    if store.document(path) is not None:
        return None
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = _read_head(fh, size)
    except OSError:
        return None
    if b"\n" not in head and len(head) < _HEAD_BYTES:
        return None
    ref = store.session_of(path, decode_head(head))
    return SessionRef(path_text(ref.session), path_text(ref.parent_session))


@lru_cache(maxsize=4096)
def _compact(source_id: str) -> str:
    """A source id (16 hex digits; 32 for files tracked before) in base64url characters.

    A line's id is stored twice (the row and its unique index): every character counts
    80,000 times per 40,000 lines. Capture errors are rare and keep their longer ids.
    """
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
        suffix = "" if event.kind == "oversized" else f":{event.kind}"
        return f"error:{source_id}:{event.generation}:{event.offset:015d}{suffix}"
    if isinstance(event, SourceFileTracked):
        return content_id("tracked", source_id, event.generation)
    return None


def _event_ids(source_id: str, events: list[Event]) -> list[str | None]:
    """:func:`_event_id` of each of one source's ``events``; a line's without a call each."""
    prefix = f"l{_compact(source_id)}."
    return [
        f"{prefix}{e.generation}.{e.offset:x}"
        if type(e) is TranscriptLineCaptured
        else _event_id(source_id, e)
        for e in events
    ]
