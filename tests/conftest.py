from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from skillopsd.events import Database, EventLog

from ._isolation import changed, fingerprint, isolate, live_databases, user_data_places
from ._shared import SHARED, mark_needs_shared, require_shared, skip_missing_shared, strict

REPO = Path(__file__).resolve().parent.parent

__all__ = ["REPO", "SHARED", "console_script", "ctl_command", "run_ctl"]


# Property tests: in CI (``CI=true`` or ``SKILLOPS_REQUIRE_SHARED=1``) every draw is derived from
# the test itself, so a landed main never fails on a random draw; on a developer's machine the
# draws are random, to keep finding new examples. An example a failing draw finds is kept as an
# ``@example`` on its test. No deadline either way: on two shared cores timings are noise.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, max_examples=100
)
settings.register_profile("dev", deadline=None, print_blob=True, max_examples=100)
settings.load_profile("ci" if strict() else "dev")

_USER_DATA = pytest.StashKey[tuple[list[Path], dict[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_shared: the test reads ../shared (set automatically when it does)"
    )
    places = user_data_places(os.environ)
    config.stash[_USER_DATA] = (places, fingerprint(places, live_databases(places)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything skillops writes by default changed in the real HOME."""
    places, before = session.config.stash[_USER_DATA]
    after = fingerprint(places, live_databases(places))
    lines = changed(before, after)
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "the test run changed a real user's skillops data:\n  " + "\n  ".join(lines)
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            sys.stderr.write(message + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HOME of its own for session- and module-scoped fixtures (they run before per-test ones)."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("session-home")
        isolate(patch, home)
        yield home


@pytest.fixture(autouse=True)
def isolated_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every test runs on a fresh, empty HOME with nothing pointing at real data (_isolation)."""
    home = tmp_path_factory.mktemp("home")
    isolate(monkeypatch, home)
    return home


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
