"""A daemon killed with SIGKILL while it derives leaves no worker behind holding its lock.

Derive workers are forked from the daemon. Before this was fixed, they outlived a SIGKILL
(waiting forever on a queue whose pipe they keep open themselves), ignored SIGTERM (the
daemon's handlers only enqueue) and held the daemon's flock: every restart then said
"another skillopsd is already running", and ``status`` showed the dead daemon as running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from skillopsd.deriving import POOL_MIN_SESSIONS

from ._capture_helpers import FIXTURES, claude_project
from ._daemon import daemon_env, db_path
from .conftest import console_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

_ORIGINAL = "4438ec3f-cef8-537e-8237-ef36ba665ed7"  # the fixture's session id

# The daemon's own lock and the daemon's own deriver with worker processes (and, as the
# daemon's prices, the pricer process), except that each session takes a minute: the workers
# are surely alive when the parent is killed.
_SCRIPT = """
import sys, time
from pathlib import Path
from skillopsd.daemon import acquire_lock
from skillopsd.derive import derive_session
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database

def slow(*args, **kwargs):
    time.sleep(60)
    return derive_session(*args, **kwargs)

path = Path(sys.argv[1])
lock = acquire_lock(path)
db = Database.open(path)
deriver = SessionDeriver(db, derive=slow, workers=2, price=True)
deriver.derive(deriver.all_sessions())
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found += [int(p) for p in text.split()]
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may never reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def captured(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    text = (FIXTURES / "claude_skill.jsonl").read_text()
    for n in range(POOL_MIN_SESSIONS + 2):
        native = f"00000000-0000-4000-8000-{n:012d}"
        (claude_project(home) / f"{native}.jsonl").write_text(text.replace(_ORIGINAL, native))
    env = daemon_env(home)
    subprocess.run(
        [console_script("skillopsd"), "--once", "--no-derive"], env=env, check=True, timeout=120
    )
    return home, env


def test_sigkill_while_deriving_leaves_no_worker_and_the_daemon_restarts(
    captured: tuple[Path, dict[str, str]],
) -> None:
    home, env = captured
    parent = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(db_path(home))], env=env, stderr=subprocess.PIPE
    )
    try:
        # Two workers and the pricer.
        assert _wait_until(lambda: len(_children(parent.pid)) >= 3, 60), "no worker started"
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_until(lambda: not any(_alive(w) for w in workers), 10), (
            f"workers {workers} outlived their parent"
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    status = subprocess.run(
        [console_script("skillopsctl"), "status"], env=env, capture_output=True, text=True
    )
    assert "running (pid" not in status.stdout, status.stdout
    done = subprocess.run(
        [console_script("skillopsd"), "--once"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()


def test_sigterm_ends_a_worker(captured: tuple[Path, dict[str, str]]) -> None:
    """A worker ended by hand (or by a service manager's SIGTERM to the group) goes."""
    home, env = captured
    parent = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(db_path(home))], env=env, stderr=subprocess.PIPE
    )
    try:
        assert _wait_until(lambda: len(_children(parent.pid)) >= 2, 60), "no worker started"
        worker = _children(parent.pid)[0]
        os.kill(worker, signal.SIGTERM)
        assert _wait_until(lambda: not _alive(worker), 10), "SIGTERM did not end the worker"
    finally:
        parent.kill()
        parent.wait()
