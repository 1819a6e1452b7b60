from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from skillopsd.events import Database, EventLog

from ._shared import SHARED, mark_needs_shared, require_shared, skip_missing_shared

REPO = Path(__file__).resolve().parent.parent

__all__ = ["REPO", "SHARED", "console_script", "ctl_command", "run_ctl"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_shared: the test reads ../shared (set automatically when it does)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_needs_shared(items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_shared") is not None:
        require_shared()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    skip_missing_shared(report)
    return report


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
