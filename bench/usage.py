"""``skillopsctl usage daily`` beside ``ccusage daily`` on the same transcripts, in one run.

    python3 bench/usage.py [--repeat 5]

The real corpus is unpacked into a temporary HOME and captured once by ``skillopsd --once``
(capture, derivation, pricing: timed and printed, paid once per transcript line, where
ccusage reads every file again on every run). Then, interleaved, best of ``--repeat``:
``skillopsctl usage daily --json`` (interpreter start, catch-up check, the report) and the
pinned ``ccusage daily --offline --json`` (tools/ccusage; ``npm install --prefix
tools/ccusage``) on that HOME, both grouping by UTC days. Also timed: the same report right
after a price-table upgrade (the usage projection replayed: every response priced again).
Prints wall times, the ratio ccusage/skillops (> 1: skillops is faster) and whether the two
reports agree day by day.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program

CCUSAGE = Path(__file__).resolve().parent.parent / "tools" / "ccusage" / "node_modules" / ".bin"
TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def agree(ours: str, theirs: str) -> tuple[int, int, float]:
    """(days, days whose tokens are equal, largest relative cost difference)."""
    mine = {r["period"]: r for r in json.loads(ours)["daily"]}
    other = {r["period"]: r for r in json.loads(theirs)["daily"]}
    equal = sum(
        1
        for day, r in other.items()
        if day in mine and [mine[day][k] for k in TOKENS] == [r[k] for k in TOKENS]
    )
    worst = max(
        (
            abs((mine[d]["totalCost"] or 0) - r["totalCost"]) / r["totalCost"]
            for d, r in other.items()
            if d in mine and r["totalCost"]
        ),
        default=0.0,
    )
    return len(other), equal, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    ccusage = CCUSAGE / "ccusage"
    if not ccusage.exists():
        raise SystemExit(
            f"ccusage is not installed at {ccusage}: npm install --prefix tools/ccusage"
        )
    ctl = program("skillopsctl")
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        env = {**home_env(home), "TZ": "UTC"}
        cc_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
            "TZ": "UTC",
            "NO_COLOR": "1",
        }
        capture, _ = timed([program("skillopsd"), "--once"], env)
        db = home / ".local" / "share" / "skillops" / "skillops.db"
        ours_cmd = [ctl, "--db", str(db), "usage", "daily", "--json", "--utc"]
        theirs_cmd = [str(ccusage), "daily", "--offline", "--json", "--timezone", "UTC"]
        timed(ours_cmd, env)  # catch up every projection once, as the daemon would have
        ours, theirs = [], []
        ours_out = theirs_out = ""
        for _ in range(args.repeat):
            t, ours_out = timed(ours_cmd, env)
            ours.append(t)
            t, theirs_out = timed(theirs_cmd, cc_env)
            theirs.append(t)
        upgraded = []
        for _ in range(max(1, args.repeat // 2)):
            conn = apsw.Connection(str(db))
            conn.execute("UPDATE projection_checkpoints SET version = 0 WHERE name = 'usage'")
            conn.close()
            upgraded.append(timed(ours_cmd, env)[0])
        days, equal, worst = agree(ours_out, theirs_out)
        best_ours, best_theirs = min(ours), min(theirs)
        print(f"corpus captured, derived and priced once (skillopsd --once): {capture:.2f} s")
        print(f"skillopsctl usage daily --json:  {best_ours:.3f} s (best of {args.repeat})")
        print(f"ccusage daily --offline --json:  {best_theirs:.3f} s (best of {args.repeat})")
        print(f"usage daily after a price-table upgrade (replay + reprice): {min(upgraded):.3f} s")
        print(f"ratio ccusage/skillops: {best_theirs / best_ours:.2f} (> 1: skillops is faster)")
        print(f"agreement: {equal}/{days} days with equal tokens; cost within {worst:.2e}")


if __name__ == "__main__":
    main()
