"""Every projection's digest after ``skillopsd --once`` on the real corpus, for comparing trees.

    python3 bench/digests.py --home DIR [-- DAEMON-ARGS...]

Backfills a fresh copy of the corpus with derivation, then prints the digest of each
projection's tables (leaving out the columns that hold when an event was recorded, which no
two runs share), the number of events of each type, ``skillopsctl verify``'s verdict and
``skillopsctl rebuild --check``'s (the incremental fold equals a rebuild from the log, twice).
Run it on two trees (``PYTHONPATH=<other checkout> python3 bench/digests.py --home DIR``) and
compare the output: a change that only makes things faster must print the same lines. Both
runs must read the same extracted files (``--home``: extracted there the first time, its
database removed before each run): source ids are hashes of a file's device, inode and path.
Arguments after ``--`` go to ``skillopsd`` (``--derive-workers 2`` derives beside capture on
a busy machine).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apsw
import msgspec
from _corpus import extract, home_env, program

from skillopsd.events import Database
from skillopsd.projections import Projection, default_projections

# Columns holding an event's recorded_at (the wall clock of its append), per projection.
RECORDING_TIME = {"skill_history": {"at"}}


def digest(conn: apsw.Connection, projection: Projection) -> str:
    """sha256 over the projection's tables as ProjectionEngine.digest takes it, less the
    recording-time columns."""
    h = hashlib.sha256()
    enc = msgspec.msgpack.Encoder()
    left_out = RECORDING_TIME.get(projection.name, set())
    for table in sorted(projection.tables):
        h.update(enc.encode(["table", projection.name, table]))
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        kept = [c for c in columns if c not in left_out]
        h.update(enc.encode(kept))
        names = ", ".join(f'"{c}"' for c in kept)
        order = ", ".join(str(i + 1) for i in range(len(kept)))
        for row in conn.execute(f'SELECT {names} FROM "{table}" ORDER BY {order}'):
            h.update(enc.encode(row))
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="Where the corpus is (kept).")
    parser.add_argument("daemon_args", nargs="*", help="Extra arguments for skillopsd.")
    args = parser.parse_args()
    home: Path = args.home
    if not home.exists():
        extract(home)
    shutil.rmtree(home / ".local" / "share" / "skillops", ignore_errors=True)
    env = home_env(home)
    daemon = [program("skillopsd"), "--once", "--log-level", "warning", *args.daemon_args]
    subprocess.run(daemon, env=env, check=True)
    db_path = home / ".local" / "share" / "skillops" / "skillops.db"
    db = Database.open(db_path)
    try:
        with db.read() as conn:
            for projection in sorted(default_projections(), key=lambda p: p.name):
                print(f"projection {projection.name:14s} {digest(conn, projection)}")
            for type_name, count in conn.execute(
                "SELECT type, count(*) FROM events GROUP BY type ORDER BY type"
            ):
                print(f"events {type_name:26s} {count}")
    finally:
        db.close()
    ctl = program("skillopsctl")
    for command in (["verify"], ["rebuild", "--check"]):
        out = subprocess.run([ctl, *command], env=env, capture_output=True, text=True)
        last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
        last = re.sub(r" \(head hash [0-9a-f]+\)", "", last)  # recording times differ
        print(f"{' '.join(command)}: exit {out.returncode}: {last}")


if __name__ == "__main__":
    main()
