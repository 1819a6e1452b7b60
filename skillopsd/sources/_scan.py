"""Finding transcript files under the roots (or given paths) and capturing each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec

from ._access import folder_problem
from ._capture import Capturer, FileResult
from ._registry import STORES, Root
from ._store import Store, decode_head, open_regular

_SNIFF_BYTES = 1024 * 1024
_DOCUMENT_BYTES = 64 * 1024 * 1024
_json = msgspec.json.Decoder()

# Told of a folder that cannot be listed: the agent whose root holds it, and the error.
Unlistable = Callable[[str, OSError], None]


class ScanResult(msgspec.Struct):
    """Totals of one pass over many files."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    errors: int = 0
    stopped: bool = False

    def add(self, result: FileResult) -> None:
        self.files += 1
        self.lines += result.lines
        self.bytes += result.bytes
        self.errors += result.errors
        self.stopped = self.stopped or result.stopped


def _onerror(agent: str, unlistable: Unlistable | None) -> Callable[[OSError], None] | None:
    if unlistable is None:
        return None
    return lambda exc: unlistable(agent, exc)


def discover(
    roots: Sequence[Root], unlistable: Unlistable | None = None
) -> Iterator[tuple[Path, Store]]:
    """Every transcript file under ``roots`` with the store that reads it.

    Folders that cannot be listed are passed to ``unlistable``; the walk goes on.
    """
    for root in roots:
        if root.path.exists():
            store = STORES[root.agent]
            for path in store.iter_files(root.path, onerror=_onerror(root.agent, unlistable)):
                yield path, store


def discover_under(
    directory: Path, roots: Sequence[Root], unlistable: Unlistable | None = None
) -> Iterator[tuple[Path, Store]]:
    """Transcript files below ``directory`` (a new folder, say), as the roots' stores see them."""
    for root in roots:
        if directory == root.path or directory.is_relative_to(root.path):
            start = directory
        elif root.path.is_relative_to(directory):
            start = root.path  # a root (or its parent) appeared
        else:
            continue
        if start.is_dir():
            store = STORES[root.agent]
            onerror = _onerror(root.agent, unlistable)
            for path in store.iter_files(root.path, start, onerror=onerror):
                yield path, store


def store_for(path: Path, roots: Sequence[Root]) -> Store | None:
    """The store whose root holds ``path`` and claims it (for watch hints), if any."""
    for root in roots:
        try:
            relative = path.relative_to(root.path)
        except ValueError:
            continue
        store = STORES[root.agent]
        if store.claims(relative):
            return store
    return None


def sniff_store(path: Path) -> Store | None:
    """The store whose record shapes the file's first lines match."""
    try:
        with open_regular(path) as fh:  # never a FIFO: it would block
            data = fh.read(_SNIFF_BYTES)
            head = decode_head(data)
            if not any(s.sniff(head) for s in STORES.values()) and data.lstrip()[:1] == b"{":
                # Perhaps one document (pretty-printed, or without a final newline).
                head = [_json.decode(data + fh.read(_DOCUMENT_BYTES))]
    except (OSError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    for store in STORES.values():
        if store.sniff(head):
            return store
    return None


def expand_paths(
    paths: Sequence[Path],
    agent: str | None,
    unlistable: Callable[[OSError], None] | None = None,
) -> Iterator[tuple[Path, Store | None]]:
    """Files named on a command line: folders are walked for ``*.jsonl`` and ``*.json``
    (``unlistable`` is told of each folder that could not be listed)."""
    forced = STORES[agent] if agent else None
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, onerror=unlistable):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.endswith((".jsonl", ".json")):
                        file = Path(dirpath) / name
                        yield file, forced or sniff_store(file)
        else:
            yield path, forced or sniff_store(path)


def capture_all(
    capturer: Capturer,
    files: Sequence[tuple[Path, Store]],
    read: Callable[[Path], None] | None = None,
) -> ScanResult:
    """Capture each file in turn, in batches that may span files.

    ``read`` is told each file once it has been read to its end (its last lines may still
    wait in the batch: they are committed by the next batch the capturer's ``on_batch``
    reports).

    Stops between batches when the capturer is told to. If another process captured one of
    a batch's sources first, the batch commits without it and that file is read again from
    what the other process committed: both finish, and every line is stored once.
    """
    total = ScanResult()
    before = msgspec.structs.replace(capturer.stored)
    with capturer.batching():
        for path, store in files:
            total.add(capturer.capture_file(path, store))
            if read is not None:
                read(path)
            if total.stopped or capturer.should_stop():
                total.stopped = True
                break
    capturer.retry_raced()
    # What this process stored, not what it read: a batch that lost a race to another
    # writer stored nothing, and its lines are counted once, when read again.
    total.lines = capturer.stored.lines - before.lines
    total.bytes = capturer.stored.bytes - before.bytes
    total.errors = capturer.stored.errors - before.errors
    return total


def full_pass(
    capturer: Capturer,
    roots: Sequence[Root],
    announce: Callable[[list[tuple[Path, Store]]], None] | None = None,
    read: Callable[[Path], None] | None = None,
) -> ScanResult:
    """Every file under ``roots``; then folders and files that could not be read are settled.

    Folders that cannot be listed are recorded (once) and cleared when listed again;
    sources whose file vanished before it was read to its end are recorded as such.
    ``announce`` is shown the files found before any is read; ``read`` is told each file
    read to its end (see :func:`capture_all`).
    """
    unlistable: list[tuple[str, OSError]] = []
    files = list(discover(roots, lambda agent, exc: unlistable.append((agent, exc))))
    for agent, exc in unlistable:
        where, problem = folder_problem(exc)
        capturer.problem(where, agent, problem.kind, problem.message)
    if announce is not None:
        announce(files)  # e.g. the bytes a backfill has ahead of it
    result = capture_all(capturer, files, read)
    if not result.stopped:
        capturer.settle_unlistable({str(e.filename) for _, e in unlistable})
        capturer.settle_links()
        result.errors += capturer.check_vanished()
    return result
