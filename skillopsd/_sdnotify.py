"""systemd's notify protocol in a few lines of stdlib: READY, WATCHDOG, STATUS, STOPPING."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends ``sd_notify`` datagrams when ``$NOTIFY_SOCKET`` is set; a no-op otherwise."""

    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if address:
            # An abstract socket is written with a leading '@'.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Ping at half the watchdog period, as systemd recommends.
        self.watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._last_ping = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd configured for this process (if any)."""
        env = os.environ if env is None else env
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        watchdog = (
            int(usec) if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        )
        return cls(env.get("NOTIFY_SOCKET"), watchdog)

    def send(self, *fields: str) -> None:
        """Send ``KEY=value`` fields in one datagram; errors are ignored (systemd may be gone)."""
        if self._sock is None or self._address is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(fields).encode(), self._address)

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def tick(self) -> None:
        """Send ``WATCHDOG=1`` if half the watchdog period has passed since the last one."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
