"""What routing on a team's pool costs (issue 23 item 3), beside routing on local counts.

    python3 bench/pool.py [--machines 50] [--executions 300] [--repeat 3]

Starts a throwaway PostgreSQL (as the tests do: ``initdb`` on PATH or the Debian package),
builds ``--machines`` logs that each manage one skill and test the same challenger with
``--executions`` recorded executions (success 0.7 on both arms, a fixed seed), and syncs them
all with ``skillopsctl sync``'s code. Then, on one machine, best of ``--repeat``:

- ``sync_skill`` with the team URL (read the pool from the server, fold every machine's skill
  stream, run the decision rule on the pool, route on it) beside the floor: the same
  ``sync_skill`` without a team (local counts, the machine-only path);
- the two parts of the pooled one alone: the server read, and the fold of what it returned.

The horizon is raised so that the test stays open while it is measured (the rule still runs).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import PolicySet, SkillExecutionRecorded
from skillopsd.team import Content, machine_id, sync
from skillopsd.team.pool import bind, snapshot
from skillopsd.versions.pooled import others, pool
from skillopsd.versions.store import add_challenger, import_skill, read_state
from skillopsd.versions.sync import sync_skill
from tests._postgres import start_server

SKILL = "tidy"
CHAMPION = "---\nname: tidy\ndescription: bench\n---\n\nSort the imports.\n"
CHALLENGER = "---\nname: tidy\ndescription: bench\n---\n\nRun ruff check --fix.\n"


def machine(work: Path, n: int, executions: int, rng: random.Random) -> Path:
    """One machine's log: the skill managed, the challenger in test, its executions."""
    home = work / f"m{n}"
    (home / "tidy").mkdir(parents=True)
    (home / "tidy" / "SKILL.md").write_text(CHAMPION)
    (home / "challenger.md").write_text(CHALLENGER)
    path = home / "skillops.db"
    db = Database.open(path, fsync_commits=False)
    try:
        log = EventLog(db)
        log.append([NewEvent("policy:bandit", PolicySet(name="bandit", values={"horizon": 10**6}))])
        import_skill(db, SKILL, home / "tidy", [], "bench")
        add_challenger(db, SKILL, home / "challenger.md", "bench", None)
        state = read_state(db, SKILL)
        assert state.champion and state.challenger
        arms = (state.champion, state.challenger)
        log.append(
            [
                NewEvent(
                    f"skill:{SKILL}",
                    SkillExecutionRecorded(
                        skill=SKILL,
                        version_hash=arms[i % 2],
                        session_id="",
                        outcome="success" if rng.random() < 0.7 else "failure",
                        source="manual",
                        signal="bench",
                        execution_id=f"manual:{n}-{i}",
                    ),
                )
                for i in range(executions)
            ]
        )
    finally:
        db.close()
    return path


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(20261207)
    server = start_server()
    pg = next(server)
    try:
        url = pg.new_database()
        with tempfile.TemporaryDirectory(prefix="skillops-bench-pool-") as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            paths = [machine(work, n, args.executions, rng) for n in range(args.machines)]
            for path in paths:
                db = Database.open(path, fsync_commits=False)
                try:
                    sync(db, url, Content.DERIVED)
                finally:
                    db.close()
            print(
                f"{args.machines} machines x {args.executions} executions built and synced in"
                f" {time.perf_counter() - started:.1f} s"
            )
            db = Database.open(paths[0], fsync_commits=False)
            try:
                now = datetime.now(UTC)
                me = machine_id(db) or ""
                pooled = best(
                    args.repeat, lambda: sync_skill(db, SKILL, now=now, executions=False, team=url)
                )
                local = best(args.repeat, lambda: sync_skill(db, SKILL, now=now, executions=False))
                state = read_state(db, SKILL)
                exp = state.experiments[state.experiment or ""]
                opening = (exp.champion, exp.challenger, exp.started_at)
                read = best(args.repeat, lambda: snapshot(url, SKILL, me, opening))
                snap = snapshot(url, SKILL, me, opening)
                test = bind(snap.tests, *opening)
                assert test is not None
                fold = best(args.repeat, lambda: others(SKILL, snap, test))
                found = pool(state, me, snap, test)
                report = sync_skill(db, SKILL, now=now, executions=False, team=url)
            finally:
                db.close()
        champ, chall = found.arms()
        print(
            f"pool: {len(found.shares)} machines, champion {champ.successes}/{champ.executions},"
            f" challenger {chall.successes}/{chall.executions}; routed on {report.pool},"
            f" decisions {report.decisions or 'none'}"
        )
        print(f"sync_skill on the pool   {pooled * 1000:8.1f} ms")
        print(f"  server read            {read * 1000:8.1f} ms")
        print(f"  fold of every machine  {fold * 1000:8.1f} ms")
        print(f"sync_skill, local floor  {local * 1000:8.1f} ms")
        print(f"ratio pool/floor: {pooled / local:.2f}x")
    finally:
        server.close()


if __name__ == "__main__":
    main()
