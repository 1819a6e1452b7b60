"""Live export from the daemon: each session once it settles, and again whenever it changes.

It runs in its own thread with its own database connection, so a slow or absent receiver
never holds up capture. The daemon pokes it after each projection pass; it also wakes when a
waiting session is due to settle and when a backoff after a failure ends. A session settles
when its last change was recorded ``settle`` seconds ago, or its transcript's last activity
is that old (a backfill of old sessions exports at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from ..events import Database, LogError
from ._checkpoint import record_error, register, target_key
from ._otlp import DEFAULT_BATCH_BYTES, DEFAULT_PROJECT
from ._phoenix import PhoenixAPI
from ._run import ExportIncomplete, due_sessions, export_sessions, settled
from ._sender import ReceiverRefused, Sender

_log = structlog.get_logger("skillopsd.export")
_IDLE = 60.0  # wake at least this often (a missed poke costs at most this much delay)
_MAX_BACKOFF = 300.0


class LiveExporter:
    """A thread exporting settled, changed sessions of the database at ``db_path``."""

    def __init__(
        self,
        db_path: Path,
        endpoint: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        settle: float = 60.0,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        project: str = DEFAULT_PROJECT,
        timeout: float = 10.0,
    ) -> None:
        self.db_path = db_path
        # Each pass tries once and the next pass again: a receiver started after the daemon
        # is waited for, not taken for a wrong address.
        self.sender = Sender(
            endpoint, headers or [], timeout=timeout, attempts=1, wrong_address_is_final=False
        )
        self.target = target_key(self.sender.url, project, DEFAULT_PROJECT)
        # When the receiver is Phoenix: read back what it stored before checkpointing.
        self.phoenix: PhoenixAPI | None = None
        self._api = PhoenixAPI(endpoint, project, headers or [], timeout=timeout)
        self._probed = False
        self.settle = settle
        self.max_bytes = max_bytes
        self.project = project
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._failures = 0
        self._drain = False

    def start(self) -> None:
        """Start exporting (what is already due goes first)."""
        self._thread.start()

    def poke(self) -> None:
        """Something was derived or recorded: look for due sessions now."""
        self._wake.set()

    def stop(self, timeout: float = 15.0, *, drain: bool = False) -> None:
        """Stop, waiting up to ``timeout`` seconds.

        Without ``drain`` the pass in progress ends after its current request (what was not
        acknowledged stays due for the next start); with it, one last pass exports every
        settled session first (``skillopsd --once``).
        """
        self._drain = drain
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            db = Database.open(self.db_path, create=False, fsync_commits=False)
        except LogError as exc:
            _log.error("otlp export disabled: cannot open the database", error=str(exc))
            return
        try:
            register(db, self.target, live=True)
            _log.info("otlp export on", endpoint=self.target, settle=self.settle)
            while not self._stop.is_set():
                self._wake.clear()
                self._wake.wait(self._guarded(db, self._stop.is_set))
            if self._drain:
                self._guarded(db, lambda: False)
        except Exception:  # the exporter must never take capture down with it
            _log.exception("otlp export stopped by an error", endpoint=self.target)
        finally:
            self.sender.close()
            db.close()

    def _guarded(self, db: Database, should_stop: Callable[[], bool]) -> float:
        """:meth:`_pass`, where an unexpected error (a busy database...) means: try later."""
        try:
            return self._pass(db, should_stop)
        except Exception:
            self._failures += 1
            _log.exception("otlp export pass failed; will retry", endpoint=self.target)
            return min(_MAX_BACKOFF, 2.0 * 2 ** min(self._failures, 8))

    def _pass(self, db: Database, should_stop: Callable[[], bool]) -> float:
        """Export what is due; returns how long to sleep before the next look."""
        ready, _waiting, soonest = settled(due_sessions(db, self.target), time.time(), self.settle)
        next_settle = min(_IDLE, soonest) if soonest is not None else _IDLE
        if not ready:
            return max(0.05, next_settle)
        if not self._probed:
            answer = self._api.is_phoenix()
            self._probed = answer is not None  # unreachable: ask again next pass
            if answer:
                self.phoenix = self._api
                _log.info("otlp receiver is Phoenix: exports are read back before checkpointing")
        try:
            report = export_sessions(
                db,
                self.sender,
                ready,
                target=self.target,
                max_bytes=self.max_bytes,
                project=self.project,
                should_stop=should_stop,
                phoenix=self.phoenix,
            )
        except ExportIncomplete as exc:
            self._failures += 1
            backoff = min(_MAX_BACKOFF, 0.5 * 2 ** min(self._failures, 10))
            if isinstance(exc.cause, ReceiverRefused):
                backoff = _MAX_BACKOFF  # a refusal is a configuration problem: retry slowly
            retry_after = getattr(exc.cause, "retry_after", None)
            if retry_after is not None:
                backoff = min(max(backoff, retry_after), _MAX_BACKOFF)
            record_error(db, self.target, str(exc.cause))
            _log.warning(
                "otlp export failed; will retry",
                error=str(exc.cause),
                exported_sessions=exc.report.sessions,
                retry_in=round(backoff, 2),
            )
            return backoff
        if self._failures:
            _log.info("otlp export recovered", endpoint=self.target)
        self._failures = 0
        if report.rejected:
            record_error(
                db,
                self.target,
                f"{self.target}: receiver rejected {report.rejected} spans: "
                f"{report.rejected_message}",
            )
        _log.info(
            "otlp exported", sessions=report.sessions, spans=report.spans, batches=report.batches
        )
        return 0.0  # look again at once: more may have become due meanwhile
