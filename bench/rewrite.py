"""What noticing a rewrite anywhere costs (issue 19, item 5), beside the same work without it.

    python3 bench/rewrite.py [--repeat 3]

A line source's committed bytes are digested in 64 KiB blocks as they are captured, and a
sample of those blocks (up to 128 KiB per file) is read back and checked before a file is
read on. Measured in one process on the real corpus, best of ``--repeat``, interleaved:

- capture: a full pass capturing the corpus into a new database, with block digests, beside
  the floor: the same pass with digesting switched off;
- an idle rescan: a full pass over the captured corpus with nothing new (every file checked),
  beside the floor: the same pass with the check switched off. Prints the bytes read back.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, transcript_files

from skillopsd._logging import configure
from skillopsd.events import Database
from skillopsd.sources import Capturer, Root, _capture, full_pass


def _roots(home: Path) -> list[Root]:
    return [
        Root(agent="claude", path=home / ".claude" / "projects"),
        Root(agent="codex", path=home / ".codex" / "sessions"),
    ]


def _patched(name: str, replacement: Any) -> Callable[[], None]:
    original = getattr(_capture, name) if hasattr(_capture, name) else None
    setattr(_capture, name, replacement)
    return lambda: setattr(_capture, name, original)


def capture(home: Path, work: Path, digests: bool, n: int) -> float:
    db = Database.open(work / f"capture-{digests}-{n}.db", fsync_commits=False)
    undo = None if digests else _patched("_block_digests", lambda _fd, _b, _o, _n, _h=(): b"")
    try:
        start = time.perf_counter()
        full_pass(Capturer(db), _roots(home))
        return time.perf_counter() - start
    finally:
        if undo is not None:
            undo()
        db.close()


def rescan(db: Database, home: Path, check: bool) -> tuple[float, int]:
    capturer = Capturer(db)
    read = 0
    original = _capture.os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        nonlocal read
        data = original(fd, length, offset)
        read += len(data)
        return data

    _capture.os.pread = counting  # type: ignore[assignment]
    if not check:
        capturer._blocks_match = lambda _fh, _row: True  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        full_pass(capturer, _roots(home))
        return time.perf_counter() - start, read
    finally:
        _capture.os.pread = original  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = extract(work / "home")
        files = transcript_files(home)
        size = sum(p.stat().st_size for p in files)
        print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB")
        with_digests: list[float] = []
        without: list[float] = []
        for n in range(args.repeat):
            without.append(capture(home, work, False, n))
            with_digests.append(capture(home, work, True, n))
        a, b = min(without), min(with_digests)
        print(f"capture, floor (no block digests):     {a:6.2f} s")
        print(f"capture, with block digests:           {b:6.2f} s   ratio {b / a:.2f}")
        db = Database.open(work / f"capture-True-{args.repeat - 1}.db", fsync_commits=False)
        checked: list[float] = []
        unchecked: list[float] = []
        read = 0
        for _ in range(args.repeat):
            unchecked.append(rescan(db, home, False)[0])
            t, read = rescan(db, home, True)
            checked.append(t)
        db.close()
        a, b = min(unchecked), min(checked)
        print(f"idle rescan, floor (no block check):   {a * 1000:6.1f} ms")
        print(
            f"idle rescan, with block check:         {b * 1000:6.1f} ms   ratio {b / a:.2f};"
            f" {read / 1e6:.1f} MB read back ({read / size:.1%} of the corpus)"
        )


if __name__ == "__main__":
    main()
