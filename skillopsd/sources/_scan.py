"""Finding transcript files under the roots (or given paths) and capturing each."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from ._capture import RACE_RETRIES, Capturer, FileResult, Raced
from ._registry import STORES, Root
from ._store import Store, decode_head


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


def discover(roots: Sequence[Root]) -> Iterator[tuple[Path, Store]]:
    """Every transcript file under ``roots`` with the store that reads it."""
    for root in roots:
        if root.path.exists():
            store = STORES[root.agent]
            for path in store.iter_files(root.path):
                yield path, store


def discover_under(directory: Path, roots: Sequence[Root]) -> Iterator[tuple[Path, Store]]:
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
            for path in store.iter_files(root.path, start):
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
        with open(path, "rb") as fh:
            head = decode_head(fh.read(1024 * 1024))
    except OSError:
        return None
    for store in STORES.values():
        if store.sniff(head):
            return store
    return None


def expand_paths(paths: Sequence[Path], agent: str | None) -> Iterator[tuple[Path, Store | None]]:
    """Files named on a command line: folders are walked for ``*.jsonl``."""
    forced = STORES[agent] if agent else None
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.endswith(".jsonl"):
                        file = Path(dirpath) / name
                        yield file, forced or sniff_store(file)
        else:
            yield path, forced or sniff_store(path)


def capture_all(capturer: Capturer, files: Sequence[tuple[Path, Store]]) -> ScanResult:
    """Capture each file in turn, in batches that may span files.

    Stops between batches when the capturer is told to. If another process captured one of
    a batch's sources first, the batch is dropped and the pass repeated: what was already
    committed is not read again.
    """
    total = ScanResult()
    for attempt in range(RACE_RETRIES):
        total = ScanResult()
        try:
            with capturer.batching():
                for path, store in files:
                    total.add(capturer.capture_file(path, store))
                    if total.stopped or capturer.should_stop():
                        total.stopped = True
                        break
            return total
        except Raced:
            capturer.discard()
            if attempt == RACE_RETRIES - 1:
                raise
    return total
