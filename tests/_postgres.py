"""A real PostgreSQL for the team tests: a throwaway cluster in a temporary directory.

Found as ``initdb`` on PATH, else the Debian package's /usr/lib/postgresql/*/bin. Started on
a free loopback port with its unix socket in its own directory, as an unprivileged user when
the tests run as root (PostgreSQL refuses to run as root). Absent binaries skip the tests
that need them, and fail them under CI (tests/_shared.py).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from ._shared import skip_or_fail

USER = "skillops"


def server_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, if any."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, bindir: Path, base: Path, port: int, run_as: list[str]) -> None:
        self.bindir = bindir
        self.base = base
        self.port = port
        self.run_as = run_as
        self._names = itertools.count(1)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        name = f"team{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def _options(self) -> list[str]:
        # The log file too: without it the server would write to (and hold open) our pipe.
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        return ["-l", str(self.base / "server.log"), "-o", options]

    def start(self) -> None:
        done = self.pg_ctl(*self._options(), "-w", "start")
        if done.returncode != 0:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}{done.stdout}\n{log}")

    def restart(self) -> None:
        """Stop (ending every connection) and start again with the same options."""
        done = self.pg_ctl(*self._options(), "-m", "fast", "-w", "restart")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {done.stderr}{done.stdout}")

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")


def _run_as() -> list[str]:
    """The command prefix that runs the server unprivileged (empty when not root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        skip_or_fail("running as root without runuser: cannot start PostgreSQL unprivileged")
    return [runuser, "-u", "nobody", "--"]


def start_server() -> Iterator[Server]:
    bindir = server_bin()
    if bindir is None:
        skip_or_fail(
            "needs the PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in"
            " /usr/lib/postgresql/*/bin: apt-get install postgresql (.ci/run does)"
        )
    run_as = _run_as()
    # Not under pytest's tmp dir: its parents are 0700 root, which the unprivileged server
    # could not enter.
    base = Path(tempfile.mkdtemp(prefix="skillops-pg-"))
    if run_as:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
    server = Server(bindir, base, _free_port(), run_as)
    try:
        init = subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust",
             "-U", USER, "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
