from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillopsd.events import Database, EventLog

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(tmp_path / "skillops.db")
    yield database
    database.close()


@pytest.fixture
def log(db: Database) -> EventLog:
    return EventLog(db)


def console_script(name: str) -> str:
    """The installed console script ``name`` (beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    exe = str(beside) if beside.exists() else shutil.which(name)
    assert exe, f"console script {name!r} is not installed; run pip install -e ."
    return exe


def ctl_command() -> list[str]:
    return [console_script("skillopsctl")]


def run_ctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*ctl_command(), *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
