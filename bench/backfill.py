"""Backfill of the real corpus by ``skillopsd --once`` beside a capture floor, in one run.

    python3 bench/backfill.py [--repeat 3]

Floor: read every file, JSON-decode every line with msgspec, insert (file, offset, line) rows
into a plain WAL table with apsw in batches of 1,000 (synchronous=NORMAL, as the daemon uses).
Measured: ``skillopsd --once --no-derive`` as a real process on HOME=the extracted corpus
(interpreter start, discovery, redaction, encoding, hash chain, tracking rows, projections;
bench/derive.py measures the backfill with derivation). Prints both
times, MB/s, the ratio (target <= 2.0), the daemon's peak RSS (target < 250 MB) and the
database size (file + WAL after the backfill) over the transcript bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import database_bytes, extract, home_env, program, transcript_files


def floor(files: list[Path], db: Path) -> float:
    start = time.perf_counter()
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE lines (file TEXT, offset INTEGER, line BLOB)")
    decoder = msgspec.json.Decoder()
    batch: list[tuple[str, int, bytes]] = []

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO lines VALUES (?, ?, ?)", batch)
        conn.execute("COMMIT")
        batch.clear()

    for path in files:
        offset = 0
        for line in path.read_bytes().split(b"\n")[:-1]:
            try:  # noqa: SIM105 (suppress() is slower in this hot loop)
                decoder.decode(line)
            except msgspec.DecodeError:
                pass
            batch.append((str(path), offset, line))
            offset += len(line) + 1
            if len(batch) >= 1000:
                flush()
    if batch:
        flush()
    conn.close()
    return time.perf_counter() - start


def daemon(home: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``skillopsd --once`` on ``home``."""
    exe = program("skillopsd")
    env = home_env(home)
    start = time.perf_counter()
    proc = subprocess.Popen([exe, "--once", "--no-derive", "--log-level", "warning"], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"skillopsd --once exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        files = transcript_files(home)
        size = sum(p.stat().st_size for p in files)
        floors, runs, rss = [], [], []
        for i in range(args.repeat):
            floors.append(floor(files, Path(tmp) / f"floor{i}.db"))
            shutil.rmtree(home / ".local", ignore_errors=True)
            seconds, peak = daemon(home)
            runs.append(seconds)
            rss.append(peak)
        stored = database_bytes(home)
        f, d = min(floors), min(runs)
    mb = size / 1e6
    print(f"corpus: {len(files)} files, {mb:.1f} MB")
    print(f"floor (read + msgspec decode + apsw insert): {f:6.2f} s  {mb / f:6.1f} MB/s")
    print(f"skillopsd --once --no-derive:                {d:6.2f} s  {mb / d:6.1f} MB/s")
    print(f"ratio daemon/floor: {d / f:.2f}  (target <= 2.0)")
    print(
        f"database (file + WAL) / transcripts: {stored / 1e6:.1f} MB / {mb:.1f} MB"
        f" = {stored / size:.2f}  (capture only; target <= 0.5 with derivation: bench/derive.py)"
    )
    print(f"daemon peak RSS: {max(rss):.0f} MB  (target < 250 MB)")


if __name__ == "__main__":
    main()
