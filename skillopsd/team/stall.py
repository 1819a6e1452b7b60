"""A team server that stops answering mid-command: said after a few seconds, given up after
a bound, never a silent wait.

A server can accept a connection and then stall: its processes frozen, a table locked by
``VACUUM FULL``, a VPN that dropped without a reset (the kernel's TCP timeout is many
minutes). Server-side timeouts cannot help when the server itself is stuck, so a watchdog
thread watches the command's progress (each batch sent, each row pulled): after ``WARN``
seconds without any it says once that it is waiting; after the bound it shuts the
connection's socket down, which ends the blocked read at once (in any thread) with an error
the caller turns into one line.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import psycopg

# Seconds without progress before giving up; $SKILLOPS_TEAM_TIMEOUT overrides it.
TIMEOUT_ENV = "SKILLOPS_TEAM_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
WARN = 5.0  # before saying "waiting for …" (less when the bound is shorter)


# The watchdog of the command running in this thread (a new thread starts with none), so the
# loops deep in a pull can say they made progress without one being passed down to them.
_current: ContextVar[Watchdog | None] = ContextVar("skillops_team_watchdog", default=None)


def progress() -> None:
    """Something came back from the server (a row, a batch): the current watchdog waits on."""
    dog = _current.get()
    if dog is not None:
        dog._last = time.monotonic()


def timeout() -> float:
    """The bound in seconds ($SKILLOPS_TEAM_TIMEOUT, else 60); a bad value is the default."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def lock_timeout_ms() -> int:
    """A lock held on the server (VACUUM FULL, a long transaction): the server ends the wait
    itself, with its own message, well before the watchdog would (a third of its bound)."""
    return max(1, int(timeout() * 1000 / 3))


class Watchdog:
    """``with Watchdog(conn, server, say):`` around a command's round trips; call
    :meth:`progress` whenever something came back. :attr:`stalled` says why the connection
    was cut (None when it was not)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        server: str,
        say: Callable[[str], None] | None = None,
        *,
        bound: float | None = None,
    ) -> None:
        self.conn = conn
        self.server = server
        self.say = say or (lambda _line: None)
        self.bound = timeout() if bound is None else bound
        self.warn = min(WARN, self.bound / 2)
        self.stalled: str | None = None
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="team-watchdog", daemon=True)
        self._token: Token[Watchdog | None] | None = None

    def progress(self, *_args: object) -> None:
        self._last = time.monotonic()

    def __enter__(self) -> Watchdog:
        self._last = time.monotonic()
        self._token = _current.set(self)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._token is None:
            return  # never entered
        self._thread.join()
        _current.reset(self._token)
        self._token = None

    def _watch(self) -> None:
        warned = False
        while not self._done.wait(min(0.5, self.warn / 2)):
            quiet = time.monotonic() - self._last
            if quiet >= self.bound:
                self.stalled = (
                    f"{self.server} stopped answering: no answer for {quiet:.0f} s, gave up"
                    f" (${TIMEOUT_ENV} sets the bound, now {self.bound:g} s)"
                )
                self._cut()
                return
            if quiet >= self.warn and not warned:
                warned = True
                self.say(
                    f"waiting for {self.server}: no answer for {quiet:.0f} s (giving up"
                    f" after {self.bound:g} s)"
                )
            if quiet < self.warn:
                warned = False

    def _cut(self) -> None:
        """End the blocked read: shut the socket down (the fd stays psycopg's to close)."""
        try:
            fd = self.conn.pgconn.socket
        except psycopg.Error:
            return
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()
