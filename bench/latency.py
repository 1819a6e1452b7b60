"""Live capture latency: a line written to a watched transcript until its event is committed.

    python3 bench/latency.py [--seconds 30] [--interval 0.05]

A real ``skillopsd`` follows a temporary HOME; a writer appends one line to a Claude Code
transcript every 50 ms. A poller in this process sees each line's event in the database
(polling every 2 ms) and records the delay from the write. Beside it, the floor: a watchdog
observer in this process on the same directory, timing when the kernel's notification of
the same write arrives. Prints p50 / p99 / max of both (target: daemon p99 < 500 ms).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import home_env, program

from skillopsd.events import Database, payload_reader
from skillopsd.events.types import TranscriptLineCaptured

_line = msgspec.msgpack.Decoder(TranscriptLineCaptured)
_rec = msgspec.json.Decoder()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Floor(FileSystemEventHandler):
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.seen: list[float] = []

    def on_modified(self, event: FileSystemEvent) -> None:
        if event.src_path == self.path:
            self.seen.append(time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        project = home / ".claude" / "projects" / "-bench"
        project.mkdir(parents=True)
        target = project / "bench-session.jsonl"
        target.write_bytes(b'{"sessionId":"bench-session","seq":-1}\n')
        env = home_env(home)
        exe = program("skillopsd")
        log = open(home / "daemon.log", "wb")  # noqa: SIM115
        daemon = subprocess.Popen([exe, "--rescan-interval", "300"], env=env, stderr=log)
        db_path = home / ".local" / "share" / "skillops" / "skillops.db"
        deadline = time.monotonic() + 30
        while b"following" not in (home / "daemon.log").read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit("skillopsd did not start")
            time.sleep(0.05)
        db = Database.open(db_path)
        floor = _Floor(target)
        observer = Observer()
        observer.schedule(floor, str(project))
        observer.start()

        written: dict[int, float] = {}
        seen: dict[int, float] = {}
        stop = threading.Event()

        read = payload_reader(db)

        def poll() -> None:
            after = db.conn.execute("SELECT max(position) FROM events").fetchone()[0] or 0
            while not stop.is_set() or len(seen) < len(written):
                rows = db.conn.execute(
                    "SELECT position, codec, data FROM events WHERE position > ?"
                    " AND type = 'TranscriptLineCaptured' ORDER BY position",
                    (after,),
                ).fetchall()
                now = time.monotonic()
                for position, codec, data in rows:
                    after = position
                    line = _line.decode(read(codec, data)).line
                    seq = _rec.decode(line).get("seq", -1)
                    if seq >= 0:
                        seen[seq] = now
                if stop.is_set() and time.monotonic() > stop_at + 5:
                    break
                time.sleep(0.002)

        stop_at = float("inf")
        poller = threading.Thread(target=poll)
        poller.start()
        seq = 0
        end = time.monotonic() + args.seconds
        with open(target, "ab") as fh:
            while time.monotonic() < end:
                line = msgspec.json.encode({"sessionId": "bench-session", "seq": seq}) + b"\n"
                written[seq] = time.monotonic()
                fh.write(line)
                fh.flush()
                seq += 1
                time.sleep(args.interval)
        stop_at = time.monotonic()
        stop.set()
        poller.join()
        observer.stop()
        observer.join()
        daemon.terminate()
        daemon.wait(10)
        log.close()

    delays = [(seen[s] - written[s]) * 1000 for s in written if s in seen]
    floor_delays = []
    for t in written.values():
        later = [x for x in floor.seen if x >= t]
        if later:
            floor_delays.append((min(later) - t) * 1000)
    missing = len(written) - len(delays)
    print(
        f"lines written: {len(written)} (one every {args.interval * 1000:.0f} ms), "
        f"captured: {len(delays)}, missing: {missing}"
    )
    for name, values in (
        ("floor (inotify via watchdog)", floor_delays),
        ("skillopsd write->commit", delays),
    ):
        print(
            f"{name:30} p50 {percentile(values, 0.5):7.1f} ms  p99 "
            f"{percentile(values, 0.99):7.1f} ms  max {max(values):7.1f} ms"
        )
    print("target: skillopsd p99 < 500 ms")


if __name__ == "__main__":
    main()
