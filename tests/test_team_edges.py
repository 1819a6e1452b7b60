"""Team commands at the edges: a server that stalls, help under a team, an empty database.

A team server that stops answering mid-command: one line within a bound, never a hang.

The server is reached through a proxy that, once the client sends its first query, stops
passing bytes either way while keeping both connections open: what a frozen server (all
its processes stopped) or a VPN dropped without a reset looks like to the client. And a
lock held on the events table, as ``VACUUM FULL`` takes it.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from skillopsd.team import pool

from ._postgres import Server, start_server
from .conftest import run_ctl
from .test_team_sync import _machine

BOUND = 3.0  # $SKILLOPS_TEAM_TIMEOUT in these tests


@pytest.fixture(scope="module")
def team_server() -> Iterator[Server]:
    yield from start_server()


class FreezingProxy:
    """127.0.0.1:<port> → the server; freezes each connection at its client's first query."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.frozen = 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        startup = True
        while True:
            ready, _, _ = select.select([client, server], [], [], 30)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is client and not startup:
                    self.frozen += 1
                    return  # frozen: nothing passes any more, both stay open
                (server if sock is client else client).sendall(data)
                if sock is server and b"Z\x00\x00\x00\x05" in data:
                    startup = False  # ReadyForQuery: the next query freezes

    def close(self) -> None:
        self.listener.close()
        for sock in self._open:
            sock.close()


def _env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "SKILLOPS_TEAM_TIMEOUT": f"{BOUND:g}", "XDG_CACHE_HOME": ""}


def _one_line_exit_2(done: object, started: float) -> str:
    elapsed = time.monotonic() - started
    assert done.returncode == 2, (done.stdout, done.stderr)  # type: ignore[attr-defined]
    err: str = done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err
    # Given up within the bound (plus start-up and the wait for the watchdog's next look).
    assert elapsed < BOUND + 8, elapsed
    return err


def test_a_frozen_server_is_said_then_given_up(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    path = _machine(tmp_path, "m", 20)
    assert run_ctl("--db", str(path), "sync", "--to", url).returncode == 0
    proxy = FreezingProxy(team_server.port)
    try:
        frozen = url.replace(f":{team_server.port}/", f":{proxy.port}/")
        started = time.monotonic()
        view = run_ctl("--team", frozen, "sessions", env=_env(tmp_path / "h1"), timeout=60)
        err = _one_line_exit_2(view, started)
        assert "waiting for skillops@127.0.0.1" in err
        assert "stopped answering" in err.splitlines()[-1], err
        started = time.monotonic()
        sync = run_ctl(
            "--db", str(path), "sync", "--to", frozen, env=_env(tmp_path / "h2"), timeout=60
        )
        err = _one_line_exit_2(sync, started)
        assert "skillopsctl sync: waiting for" in err
        assert "stopped answering" in err.splitlines()[-1], err
        assert proxy.frozen == 2
    finally:
        proxy.close()


def test_a_lock_held_on_the_server_is_one_line(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    path = _machine(tmp_path, "m", 20)
    assert run_ctl("--db", str(path), "sync", "--to", url).returncode == 0
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE skillops_events IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        view = run_ctl("--team", url, "sessions", env=_env(tmp_path / "h"), timeout=60)
        err = _one_line_exit_2(view, started)
        assert "lock timeout" in err.splitlines()[-1], err
        holder.rollback()
    # Once the lock is gone the same command works.
    again = run_ctl("--team", url, "sessions", env=_env(tmp_path / "h"), timeout=60)
    assert again.returncode == 0, again.stderr


def test_help_is_printed_whatever_the_team(tmp_path: Path) -> None:
    """$SKILLOPS_TEAM_URL exported for the views (or --team typed) never hides a command's
    help, and ``sync`` runs on this machine's log under the variable (review G15)."""
    env = {"HOME": str(tmp_path), "SKILLOPS_TEAM_URL": "postgresql://u:pw@127.0.0.1:1/x"}
    for args in (("sync", "--help"), ("status", "--help"), ("annotate", "-h")):
        done = run_ctl(*args, env=env)
        assert done.returncode == 0 and "Usage: skillopsctl" in done.stdout, (args, done.stderr)
    done = run_ctl("--team", "postgresql://u:pw@127.0.0.1:1/x", "annotate", "--help", env=env)
    assert done.returncode == 0 and "Usage: skillopsctl annotate" in done.stdout


def test_sync_runs_under_the_team_variable(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    path = _machine(tmp_path, "m", 5)
    env = {"HOME": str(tmp_path), "SKILLOPS_TEAM_URL": url, "SKILLOPS_SYNC_URL": url}
    done = run_ctl("--db", str(path), "sync", env=env)
    assert done.returncode == 0, done.stderr
    assert "sent 5 events" in done.stdout
    # Typed, --team names a view to read: sync says where its server goes instead.
    typed = run_ctl("--team", url, "sync", "--to", url, env={"HOME": str(tmp_path)})
    assert typed.returncode == 2 and "give the server as skillopsctl sync --to" in typed.stderr
    assert len(typed.stderr.strip().splitlines()) == 1


def test_a_database_nobody_synced_to_says_so(tmp_path: Path, team_server: Server) -> None:
    """A typo in the database name is not shown as an empty team with a hint at ``status``
    (which does not run on a team view) (review G18)."""
    url = team_server.new_database()
    for command in ("sessions", "skills"):
        done = run_ctl("--team", url, command, env=_env(tmp_path / "h"))
        assert done.returncode == 0, done.stderr
        assert f"no machine has synced to skillops@127.0.0.1:{team_server.port}/" in done.stderr
        assert "no skillops tables" in done.stderr
        assert "no sessions on the team server" in done.stdout + done.stderr
        assert "skillopsctl status" not in done.stdout + done.stderr
    path = _machine(tmp_path, "m", 3)
    assert run_ctl("--db", str(path), "sync", "--to", url).returncode == 0
    done = run_ctl("--team", url, "sessions", env=_env(tmp_path / "h"))
    assert done.returncode == 0 and "no machine has synced" not in done.stderr, done.stderr
    fresh = run_ctl("--team", url, "sessions", env=_env(tmp_path / "h2"))
    assert "3 events of 1 machine pulled" in fresh.stderr, fresh.stderr


def test_a_pooled_call_to_a_frozen_server_is_bounded(team_server: Server) -> None:
    """The daemon's pooled routing (team/pool.py) cannot wait on a frozen server either: its
    statement timeout is the server's, so the watchdog cuts the call."""
    url = team_server.new_database()
    proxy = FreezingProxy(team_server.port)
    try:
        frozen = url.replace(f":{team_server.port}/", f":{proxy.port}/")
        started = time.monotonic()
        with pytest.raises(pool.PoolUnavailable, match="stopped answering"):
            pool.snapshot(frozen, "skill", "me")
        assert time.monotonic() - started < pool.STALL_BOUND + 3
    finally:
        proxy.close()
