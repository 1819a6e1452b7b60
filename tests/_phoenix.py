"""A real Arize Phoenix for the export tests, from the virtual environment .ci/phoenix-env makes.

Phoenix is started once per test module, bound to 127.0.0.1 on free ports with a temporary
working directory. Where it is not installed the tests are skipped, except under CI
(``CI=true``) or ``SKILLOPS_REQUIRE_SHARED=1``, where that is a failure (tests/_shared.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ._shared import skip_or_fail

VENV_ENV = "SKILLOPS_PHOENIX_VENV"
DEFAULT_VENV = Path.home() / ".cache" / "skillops" / "phoenix-venv"


def required() -> bool:
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("SKILLOPS_REQUIRE_SHARED") == "1"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Phoenix:
    """A running ``phoenix serve`` and its REST API."""

    def __init__(self, venv: Path, workdir: Path, port: int | None = None) -> None:
        self.venv = venv
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"phoenix-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "phoenix"), "serve"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"phoenix exited: {self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"phoenix not up within {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: what a crash, an OOM kill or a power cut does to Phoenix."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)
        self._log.close()

    def restarted(self) -> Phoenix:
        """A new Phoenix on the same port and the same storage (its working directory), up."""
        again = Phoenix(self.venv, self.workdir, self.port)
        try:
            again.wait_ready()
        except BaseException:
            again.stop()
            raise
        return again

    def stored_span_ids(self) -> list[str]:
        """Span ids in Phoenix's SQLite storage (read directly: Phoenix is down)."""
        import sqlite3

        conn = sqlite3.connect(self.workdir / "phoenix.db")
        try:
            return [str(r[0]) for r in conn.execute("SELECT span_id FROM spans")]
        finally:
            conn.close()

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span of ``project`` (empty while the project does not exist)."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/v1/projects/{project}/spans?{query}", timeout=30
                ) as r:
                    page = json.load(r)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return []
                raise
            out += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out


def start_phoenix(workdir: Path) -> Phoenix:
    """Phoenix from its venv, up; skips (or fails under CI) when it is not installed."""
    venv = Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)
    if not (venv / "bin" / "phoenix").exists():
        skip_or_fail(f"Phoenix is not installed in {venv} (run .ci/phoenix-env; {VENV_ENV})")
    phoenix = Phoenix(venv, workdir)
    try:
        phoenix.wait_ready()
    except BaseException:
        phoenix.stop()
        raise
    return phoenix


class Proxy:
    """A TCP relay in front of a receiver that can be taken down and brought back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
