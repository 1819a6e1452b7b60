"""Digests of every table after capturing the real corpus with a frozen clock, for comparing
trees: a change that only makes capture faster must print the same lines.

    python3 bench/capture_identity.py --home DIR
    PYTHONPATH=<other checkout> python3 bench/capture_identity.py --home DIR

Runs ``skillopsd --once --no-derive`` (in a child process) on the corpus extracted into DIR
(the first time; its database removed before each run), with ``utc_now`` and ``uuid4``
replaced by constants: then nothing a run records depends on when it ran, and the whole log
(payloads, frames, the hash chain, the sources' rows with their digests) is comparable byte
for byte. Both runs must read the same extracted files (source ids hash a file's device,
inode and path).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apsw
import msgspec
from _corpus import extract, home_env

FROZEN = "2026-01-01T00:00:00.000000Z"


def child() -> None:
    """Run the daemon's CLI with the clock and uuid4 frozen (arguments after ``--child``)."""
    import skillopsd.events as events
    import skillopsd.events._log as log

    def frozen(ago: float = 0.0) -> str:
        return FROZEN

    events.utc_now = frozen  # type: ignore[assignment]
    log.utc_now = frozen  # type: ignore[assignment]
    counter = itertools.count()
    uuid.uuid4 = lambda: uuid.UUID(int=next(counter))  # type: ignore[assignment]
    from skillopsd.daemon import main

    sys.argv = ["skillopsd", *sys.argv[2:]]
    main(prog_name="skillopsd")


def digests(db: Path) -> list[str]:
    """One line per table: its name, rows and the sha256 of every row in order."""
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    enc = msgspec.msgpack.Encoder()
    out = []
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    for (name,) in tables.fetchall():
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
        names = ", ".join(f'"{c}"' for c in columns)
        order = ", ".join(str(i + 1) for i in range(len(columns)))
        h = hashlib.sha256()
        rows = 0
        for row in conn.execute(f'SELECT {names} FROM "{name}" ORDER BY {order}'):
            h.update(enc.encode(list(row)))
            rows += 1
        out.append(f"{name:28s} {rows:7d} {h.hexdigest()[:32]}")
    conn.close()
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="Where the corpus is (kept).")
    args = parser.parse_args()
    home: Path = args.home.resolve()
    if not (home / ".claude").exists():
        extract(home)
    shutil.rmtree(home / ".local", ignore_errors=True)
    command = [sys.executable, __file__, "--child", "--once", "--no-derive", "--log-level", "error"]
    subprocess.run(command, env=home_env(home), check=True)
    print("\n".join(digests(home / ".local" / "share" / "skillops" / "skillops.db")))


if __name__ == "__main__":
    main()
