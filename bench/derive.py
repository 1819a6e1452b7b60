"""Capture + derive + project of the real corpus, a full rederive, and query wall times.

    python3 bench/derive.py [--repeat 3]

In one run, each beside its floor:
- backfill: ``skillopsd --once`` (capture, derive, project) vs the capture floor of
  bench/backfill.py (read, msgspec-decode every line, insert into a plain WAL table).
  Target: within 3x.
- rederive: every session derived again from the log (a deriver version bump) vs the floor
  of reading and decoding every captured line from the log, in this process alone and with
  the worker processes the daemon uses for many sessions, each run with our memos emptied
  (as after an upgrade: the runs before filled them with the same scripts). Target: 2.5x.
- queries: wall time of ``skillopsctl sessions --json`` and ``skillopsctl session show`` on
  the largest session, interpreter start included, beside ``python3 -c pass``. Target:
  under 0.3 s each.

Derivation with workers gains only where a core is free: on a loaded machine compare the
one-process figure too.
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

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import database_bytes, extract, home_env, program, transcript_files
from backfill import floor as capture_floor

from skillopsd.deriving import MAX_WORKERS, SessionDeriver
from skillopsd.events import Database, payload_reader
from skillopsd.events.types import TranscriptLineCaptured


def read_floor(db_path: Path) -> float:
    """Read every captured line from the log (as stored: out of its frame) and JSON-decode it."""
    start = time.perf_counter()
    db = Database.open(db_path)
    decompress = payload_reader(db)
    line_decoder = msgspec.msgpack.Decoder(TranscriptLineCaptured)
    json_decoder = msgspec.json.Decoder()
    with db.read() as conn:
        for codec, data in conn.execute(
            "SELECT codec, data FROM events WHERE type = 'TranscriptLineCaptured' ORDER BY position"
        ):
            try:  # noqa: SIM105 (suppress() is slower in this hot loop)
                json_decoder.decode(line_decoder.decode(decompress(codec, data)).line)
            except msgspec.DecodeError:
                pass
    db.close()
    return time.perf_counter() - start


def idle_cores() -> int:
    """The derivation workers ``idle_workers`` gives on this machine when nothing else runs."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, MAX_WORKERS) if cores > 1 else 1


def forget_caches() -> None:
    """Empty every memo of our modules (parsed scripts, read outputs, prices): a rederive
    after a deriver upgrade starts with none, and this process has just filled them with
    the same corpus (forked workers would inherit them too)."""
    for name, module in list(sys.modules.items()):
        if name == "skillopsd" or name.startswith("skillopsd."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear) and getattr(value, "__module__", None) == name:
                    clear()


def rederive(db_path: Path, version: int, workers: int | None = None) -> tuple[float, int]:
    forget_caches()
    start = time.perf_counter()
    db = Database.open(db_path)
    deriver = SessionDeriver(db, deriver_version=version, workers=workers)
    result = deriver.derive(deriver.all_sessions())
    db.close()
    return time.perf_counter() - start, result.sessions


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        files = transcript_files(home)
        mb = sum(p.stat().st_size for p in files) / 1e6
        env = home_env(home)
        # Our programs as installed ones run: from bytecode (cached outside the tree), even
        # where the environment asks Python not to write it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        db_path = home / ".local" / "share" / "skillops" / "skillops.db"
        floors, backfills, reads, rederives, serial = [], [], [], [], []
        # The workers the daemon takes on an idle machine, named: left to itself it derives in
        # its own process above a load of one, which the previous run of this loop leaves.
        workers = idle_cores()
        sessions = 0
        for i in range(args.repeat):
            floors.append(capture_floor(files, Path(tmp) / f"floor{i}.db"))
            shutil.rmtree(home / ".local", ignore_errors=True)
            daemon = [program("skillopsd"), "--once", "--log-level", "warning"]
            backfills.append(timed([*daemon, "--derive-workers", str(workers)], env))
            stored = database_bytes(home)
            reads.append(read_floor(db_path))
            seconds, sessions = rederive(db_path, version=100 + 2 * i, workers=workers)
            rederives.append(seconds)
            serial.append(rederive(db_path, version=101 + 2 * i, workers=1)[0])
        # The largest session, by span count.
        db = Database.open(db_path)
        largest = db.conn.execute(
            "SELECT session_id, count(*) FROM p_spans GROUP BY session_id ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
        db.close()
        ctl = program("skillopsctl")
        python_s = min(timed([sys.executable, "-c", "pass"], env) for _ in range(5))
        subprocess.run([ctl, "sessions"], env=env, check=True, stdout=subprocess.DEVNULL)
        list_s = min(timed([ctl, "sessions", "--json"], env) for _ in range(5))
        show_s = min(timed([ctl, "session", "show", largest[0]], env) for _ in range(5))
        show_json = min(
            timed([ctl, "session", "show", largest[0], "--json"], env) for _ in range(5)
        )
    f, b, r, d, d1 = min(floors), min(backfills), min(reads), min(rederives), min(serial)
    print(f"corpus: {len(files)} files, {mb:.1f} MB, {sessions} sessions; {workers} workers")
    print(f"capture floor:                          {f:6.2f} s")
    print(f"skillopsd --once (capture+derive+proj): {b:6.2f} s   ratio {b / f:.2f}  (target <= 3)")
    print(
        f"database (file + WAL) / transcripts:     {stored / 1e6:.1f} MB / {mb:.1f} MB"
        f" = {stored / 1e6 / mb:.2f}  (target <= 0.5, stretch 0.3)"
    )
    print(f"read+decode floor (every line from log):{r:6.2f} s")
    print(
        f"rederive of every session:              {d:6.2f} s   ratio {d / r:.2f}  (target <= 2.5)"
    )
    print(f"  ... in one process (no workers):      {d1:6.2f} s   ratio {d1 / r:.2f}")
    print(f"python3 -c pass (interpreter floor):    {python_s:6.2f} s")
    print(f"skillopsctl sessions --json:            {list_s:6.2f} s  (target < 0.3)")
    print(
        f"skillopsctl session show (largest, {largest[1]} spans): {show_s:.2f} s"
        f", --json {show_json:.2f} s  (target < 0.3)"
    )


if __name__ == "__main__":
    main()
