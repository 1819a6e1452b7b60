"""``skillopsd --sync-to``: a thread that pushes the log to the team server as it grows.

Capture never waits on the network: the daemon's loop only pokes this thread after it
appended (as it pokes the OTLP exporter); the thread runs one :func:`~.sync.sync` at a time,
at most one pass per ``SPACING`` seconds, on its own database connection. When the server
cannot be reached it backs off (1 s doubling to 5 minutes), saying so once in the log until
it recovers; a refused chain is said once and tried again hourly (the log is never
rewritten, so only the server's side can change). The server's rows are the checkpoint: a
pass stopped, killed or cut off keeps its committed batches, the server rolls back the one
in flight, and the next pass resumes from what the server holds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from .. import _logging
from ..events import Database, LogError
from .content import Content
from .sync import BATCH, SCHEMES, SyncError, SyncReport, first_line, redact_url, scrub, sync
from .sync_state import record_error, record_progress, record_report, register

_log = _logging.get_logger("skillopsd.team")

SPACING = 1.0  # least seconds between two passes (a busy capture is not one pass per line)
IDLE = 60.0  # a pass at least this often: events appended by skillopsctl poke nobody
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
REFUSED_RETRY = 3600.0
_PROGRESS_SECONDS = 2.0  # how often a long pass notes how far it got (for ``status``)


def check_url(url: str) -> str:
    """``url`` stripped, or ValueError with one line saying what is wrong with it (never
    the password): the daemon refuses it at start rather than failing every pass."""
    url = url.strip()
    if not url.lower().startswith(SCHEMES):
        raise ValueError(
            f"--sync-to {redact_url(url)!r}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
        )
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ValueError(f"--sync-to {redact_url(url)}: {scrub(first_line(exc), url)}") from exc
    return url


class LiveSync:
    """Push the log at ``db_path`` to ``url`` from a thread, whenever poked."""

    def __init__(
        self, db_path: Path, url: str, content: Content, *, batch: int = BATCH, once: bool = False
    ) -> None:
        self.db_path = db_path
        self.url = url
        self.server = redact_url(url)
        self.content = content
        self.batch = batch
        self._wake = threading.Event()  # any request below; the thread looks at all of them
        self._wanted = False  # new events were appended
        self._hurry = False  # retry now, whatever the backoff (SIGHUP)
        self._stopping = False
        self._drain = False
        self._failures = 0
        self._said: str | None = None  # the outage or refusal already in the log
        self._noted = 0.0
        # ``skillopsd --once``: no retry to promise, and the last pass's outcome is the exit
        # status (a cron job must learn that the server is missing its data).
        self._once = once
        self.failure: tuple[int, str] | None = (2, "it did not run")  # (exit status, why)
        self._thread = threading.Thread(target=self._run, name="team-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """Events were appended: sync them soon (within SPACING, unless backing off)."""
        self._wanted = True
        self._wake.set()

    def retry_now(self) -> None:
        """Drop the backoff and sync now (the daemon's SIGHUP)."""
        self._hurry = True
        self._wake.set()

    def stop(self, timeout: float, *, drain: bool = False) -> None:
        """Stop after the batch in flight (with ``drain``: after one last whole pass, as
        ``skillopsd --once`` wants). A pass still running after ``timeout`` is abandoned:
        the server rolls its open batch back when the process exits, and the next start
        sends it again."""
        self._drain = drain
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self.failure = (2, f"still sending after {timeout:g} s, abandoned")
            _log.warning(
                "team sync abandoned its batch in flight (sent again at the next start)",
                server=self.server,
            )

    def _run(self) -> None:
        try:
            db = Database.open(self.db_path, create=False, fsync_commits=False)
        except LogError as exc:
            self.failure = (2, f"cannot open the database: {exc}")
            _log.error("team sync disabled: cannot open the database", error=str(exc))
            return
        try:
            register(db, self.server, self.content.value, live=True)
            _log.info("team sync on", server=self.server, content=self.content.value)
            self._loop(db)
            if self._drain:
                self._pass(db, final=True)
        except Exception as exc:  # the sync must never take capture down with it
            self.failure = (2, f"stopped by an error: {type(exc).__name__}: {first_line(exc)}")
            _log.exception("team sync stopped by an error", server=self.server)
        finally:
            db.close()

    def _loop(self, db: Database) -> None:
        not_before = 0.0  # monotonic: no pass before (spacing, backoff)
        idle_at = 0.0  # monotonic: a pass then even if not poked
        while True:
            self._wake.clear()
            if self._stopping:
                return
            now = time.monotonic()
            if self._hurry:
                self._hurry, not_before = False, now  # the backoff still grows: one line
            due = not_before if self._wanted else max(not_before, idle_at)
            if now < due:
                self._wake.wait(due - now)
                continue
            self._wanted = False
            delay = self._pass(db)
            not_before = time.monotonic() + delay
            idle_at = time.monotonic() + max(delay, IDLE)

    def _pass(self, db: Database, *, final: bool = False) -> float:
        """One sync; returns the seconds to wait before the next."""
        self._noted = time.monotonic()
        try:
            report = sync(
                db,
                self.url,
                self.content,
                batch=self.batch,
                progress=lambda held: self._progress(db, held),
                should_stop=None if final else lambda: self._stopping,
                say=lambda line: _log.warning(f"team sync {line}", server=self.server),
            )
        except SyncError as exc:
            return self._failed(db, scrub(first_line(exc), self.url))
        except (LogError, OSError, psycopg.Error) as exc:  # e.g. the local database busy
            return self._failed(db, scrub(f"{type(exc).__name__}: {first_line(exc)}", self.url))
        record_report(db, self.server, report)
        self.failure = None if report.refused is None else (1, f"refused: {report.refused}")
        if report.refused is not None:
            self._failures = 0  # the server answered: an outage is over
            if report.refused != self._said:
                self._said = report.refused
                _log.error(
                    f"team sync refused: {report.refused}; retrying in {REFUSED_RETRY:g}s",
                    server=self.server,
                )
            return REFUSED_RETRY
        self._recovered(report)
        return SPACING

    def _progress(self, db: Database, held: int) -> None:
        if time.monotonic() - self._noted >= _PROGRESS_SECONDS:
            self._noted = time.monotonic()
            try:
                record_progress(db, self.server, held)
            except (LogError, OSError) as exc:  # only a note: the next one may pass
                _log.debug("team sync could not note its progress", error=str(exc))

    def _failed(self, db: Database, message: str) -> float:
        self.failure = (2, message)
        self._failures += 1
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(self._failures - 1, 16))
        try:
            record_error(db, self.server, self.content.value, message)
        except (LogError, OSError) as exc:
            _log.debug("team sync could not note its error", error=str(exc))
        if self._failures == 1:  # one line per outage; ``status`` shows the newest error
            self._said = message
            retry = "" if self._once else f"; retrying with backoff (first in {delay:g}s)"
            _log.error(f"team sync failed: {message}{retry}", server=self.server)
        else:
            _log.debug("team sync still failing", error=message, retry_in=delay)
        return delay

    def _recovered(self, report: SyncReport) -> None:
        if self._said is not None:
            _log.info("team sync recovered", server=self.server, held=report.held)
            self._said = None
        self._failures = 0
        if report.sent:
            _log.debug("team sync", server=self.server, sent=report.sent, held=report.held)
