"""The session verdict's distribution on the real corpus, and why each session got it.

    python3 bench/verdicts.py [--policy KEY=VALUE ...] [--list]

Ingests the corpus into a temporary database with the real ``skillopsctl`` and prints the
verdict table per agent; ``--list`` adds one line per session that did not end in success,
naming what decided it (the facts the rule weighs are span attributes, derive/_ending.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program

from skillopsd.events import Database


def _ctl(db: Path, home: Path, *args: str) -> str:
    result = subprocess.run(
        [program("skillopsctl"), "--db", str(db), *args],
        env=home_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _why(db: Path, session_id: str) -> str:
    """The failed or blocked calls of the session's end that the rule looked at."""
    database = Database.open(db)
    try:
        rows = database.conn.execute(
            "SELECT outcome, attributes FROM p_spans WHERE session_id = ? AND outcome IN"
            " ('failure', 'blocked') ORDER BY coalesce(start, '') DESC, seq DESC LIMIT 3",
            (session_id,),
        ).fetchall()
    finally:
        database.close()
    parts = []
    for outcome, raw in rows:
        attributes = json.loads(raw)
        error = str(attributes.get("skillops.result.error", "")).splitlines()
        parts.append(
            f"{outcome} {attributes.get('skillops.call.kind')}"
            f" end-{attributes.get('skillops.turns_from_end')}"
            f" resolved={attributes.get('skillops.resolved')}"
            f" probe={attributes.get('skillops.call.probe')}"
            f" «{(error[0] if error else '')[:60]}»"
        )
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--list", action="store_true", help="explain each non-success session")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        db = Path(tmp) / "verdicts.db"
        _ctl(db, home, "ingest", str(home / ".claude"), str(home / ".codex"))
        if args.policy:
            _ctl(db, home, "policy", "set", "verdict", *args.policy)
        sessions = json.loads(_ctl(db, home, "sessions", "--json"))
        table: Counter[tuple[str, str]] = Counter()
        for s in sessions:
            table[(s["agent"], s["verdict"] or "none")] += 1
        verdicts = ["success", "failure", "abandoned", "none"]
        print(f"{'agent':<8}" + "".join(f"{v:>11}" for v in verdicts) + f"{'total':>8}")
        for agent in sorted({a for a, _ in table}):
            row = [table[(agent, v)] for v in verdicts]
            print(f"{agent:<8}" + "".join(f"{n:>11}" for n in row) + f"{sum(row):>8}")
        totals = [sum(n for (a, vv), n in table.items() if vv == v) for v in verdicts]
        print(f"{'all':<8}" + "".join(f"{n:>11}" for n in totals) + f"{sum(totals):>8}")
        if args.list:
            for s in sessions:
                if s["verdict"] not in ("success", None):
                    title = (s["title"] or "")[:50]
                    print(f"\n{s['verdict']:<9} {s['agent']:<6} {s['native_session_id']}  {title}")
                    print(f"          {_why(db, s['session_id'])}")


if __name__ == "__main__":
    main()
