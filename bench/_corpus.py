"""What the benchmarks share: the real corpus, and running our programs on a given HOME."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real-home.tar.gz"


def extract(dest: Path) -> Path:
    """Unpack the HOME-shaped corpus into ``dest`` and return it."""
    with tarfile.open(CORPUS) as tar:
        tar.extractall(dest, filter="data")
    return dest


def transcript_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*.jsonl") if p.is_file())


def program(name: str) -> str:
    """The installed console script ``name``: beside this interpreter first (a version
    manager's shim on PATH would add its own start time to every timed run)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name) or str(beside)


def home_env(home: Path) -> dict[str, str]:
    """This environment with HOME set to ``home`` and no database override."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "SKILLOPS_DB")}
    env["HOME"] = str(home)
    return env


def database_bytes(home: Path) -> int:
    """Bytes of the skillops database under ``home``: the file plus its WAL."""
    base = home / ".local" / "share" / "skillops" / "skillops.db"
    return sum(p.stat().st_size for p in (base, Path(f"{base}-wal")) if p.exists())
