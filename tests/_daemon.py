"""Starting a real skillopsd process on a temporary HOME, and waiting on what it stored."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from skillopsd.events import Database

from .conftest import console_script


def daemon_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "XDG_DATA_HOME",
            "SKILLOPS_DB",
            "CLAUDE_CONFIG_DIR",
            "CODEX_HOME",
            "COPILOT_HOME",
            "GEMINI_CLI_HOME",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        )
    }
    env["HOME"] = str(home)
    env.update(extra)
    return env


def db_path(home: Path) -> Path:
    return home / ".local" / "share" / "skillops" / "skillops.db"


class DaemonProcess:
    """A running ``skillopsd``; stderr goes to a file so it can never block on a full pipe."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.log_path = home / f"skillopsd-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [console_script("skillopsd"), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env or daemon_env(home),
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.01
    ) -> None:
        """:func:`wait_for`, showing the daemon's log if the condition is never met."""
        try:
            wait_for(predicate, timeout, interval)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; daemon log:\n{self.logs()[-6000:]}") from None

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.wait(10)


def wait_for(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def captured_line_count(home: Path) -> int:
    path = db_path(home)
    if not path.exists():
        return 0
    try:
        db = Database.open(path)
    except Exception:
        return 0
    try:
        row = db.conn.execute("SELECT coalesce(sum(lines), 0) FROM capture_sources").fetchone()
        return row[0]
    finally:
        db.close()
