"""The version store's per-sync cost beside the floor of reading the skill's stream, in one run.

    python3 bench/versions.py [--executions 2000] [--repeat 5]

A managed skill with a running test gets ``--executions`` recorded executions (half per arm).
Timed: folding the stream (``read_state``), and a whole ``sync_skill`` with nothing new (fold,
decide, route check, live files, manifest); the floor is reading and decoding the same events
(``read_stream`` + payload). Prints the medians and the ratios fold/floor and sync/floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import SkillExecutionRecorded
from skillopsd.projections import engine_for
from skillopsd.versions.store import add_challenger, import_skill, read_state
from skillopsd.versions.sync import sync_skill


def _median(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = Database.open(root / "data" / "skillops.db", create_dirs=True)
        live = root / "skills" / "tidy"
        live.mkdir(parents=True)
        (live / "SKILL.md").write_text("---\nname: tidy\n---\n\nOne.\n")
        (root / "two.md").write_text("---\nname: tidy\n---\n\nTwo.\n")
        import_skill(db, "tidy", live, [], "bench")
        add_challenger(db, "tidy", root / "two.md", "machine", 50)
        state = read_state(db, "tidy")
        arms = [state.champion, state.challenger]
        events = [
            NewEvent(
                "skill:tidy",
                SkillExecutionRecorded(
                    skill="tidy",
                    version_hash=arms[n % 2] or "",
                    session_id="",
                    # Equal arms at 0.5: the test stays undecided, so every sync does it all.
                    outcome="success" if (n // 2) % 2 else "failure",
                    tokens=1000 + n,
                    source="manual",
                    execution_id=f"manual:{n}",
                ),
                f"bench-{n}",
            )
            for n in range(args.executions)
        ]
        EventLog(db).append(events)
        engine_for(db).catch_up()
        log = EventLog(db)

        def floor() -> None:
            with db.read():
                for event in log.read_stream("skill:tidy"):
                    _ = event.payload

        def fold() -> None:
            read_state(db, "tidy")

        def sync() -> None:
            sync_skill(db, "tidy", now=datetime.now(UTC), settle=300, executions=False)

        sync()  # the first sync routes and writes the folder; the timed ones find it done
        f, s, b = (_median(fn, args.repeat) for fn in (fold, sync, floor))
        n = len(list(log.read_stream("skill:tidy")))
        print(f"stream events: {n}")
        print(f"floor (read + decode the stream): {b * 1000:.1f} ms")
        print(f"fold (read_state): {f * 1000:.1f} ms   ratio fold/floor: {f / b:.2f}")
        print(f"sync_skill, nothing new: {s * 1000:.1f} ms   ratio sync/floor: {s / b:.2f}")
        db.close()


if __name__ == "__main__":
    main()
