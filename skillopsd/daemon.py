"""skillopsd: capture agent transcripts into the log, first what is on disk, then live.

One main loop owns all state (gunicorn's arbiter): signal handlers and the file watcher only
put items on a queue. Watch events are hints: each leads to a ``stat`` and a read from the
committed offset; a full rescan at start, on SIGHUP and every few minutes is the backstop.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

import apsw
import click

from . import _logging
from ._defaults import (
    DEFAULT_PROJECT,
    DEFAULT_SETTLE_SECONDS,
    TEAM_URL_ENV,
    TRACES_ENDPOINT_ENV,
)
from ._lockfile import lock_path
from ._params import FiniteRange
from ._paths import DB_ENV, default_db_path
from ._sdnotify import Notifier
from ._terminal import safe
from .events import (
    RARE_TYPES,
    Database,
    EventLog,
    LogError,
    StorageError,
    storage_error,
    utc_now,
)
from .pricing import forget_prices_ahead
from .projections import engine_for
from .sources import (
    DEFAULT_MAX_LINE_BYTES,
    MAX_LINE_LIMIT,
    STORES,
    Capturer,
    Root,
    ScanResult,
    Store,
    capture_all,
    discover_under,
    folder_problem,
    full_pass,
    path_text,
    resolve_roots,
    store_for,
)

if TYPE_CHECKING:
    from .deriving import EarlyDerivation, SessionDeriver, SessionKey
    from .export import LiveExporter
    from .sources._watch import Watcher
    from .team.live import LiveSync

# Derivation, export, forgetting, skill versions and the watcher are imported where first
# used: a capture-only run (``--once --no-derive``) starts in 0.27 s instead of 0.36 s.
_log = _logging.get_logger("skillopsd")

_STOP = "stop"
_RESCAN = "rescan"
# How often the follower looks whether the set of managed skills' live files changed.
LIVE_CHECK_SECONDS = 1.0
# Seconds a stream must be quiet before its last few live payloads are packed into a frame.
PACK_SETTLE = 3600.0
_PROGRESS_LOG_SECONDS = 2.0


class AlreadyRunning(Exception):
    """Another skillopsd holds the database's lock."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a backfill (workers forked meanwhile inherit it).

    A backfill allocates a few hundred thousand containers (lines, events, rows, derived
    spans) that hold no cycles: the collector ran ~470 times over the corpus and found 15
    objects to free, for 3-5 % of the appending process's CPU (and 4-7 % of the workers').
    Garbage without cycles is freed by reference counting as before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Daemon:
    """The capture service over one database and a set of roots."""

    def __init__(
        self,
        db: Database,
        roots: Sequence[Root],
        *,
        redact_secrets: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        rescan_interval: float = 300.0,
        derive_interval: float = 1.0,
        derive: bool = True,
        retain_days: float | None = None,
        notifier: Notifier | None = None,
        exporter: LiveExporter | None = None,
        syncer: LiveSync | None = None,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        workers: int | None = None,
    ) -> None:
        self.roots = list(roots)
        self.workers = workers  # deriving processes (None: one per idle core, see deriving)
        self.rescan_interval = rescan_interval
        self.notifier = notifier or Notifier(None, None)
        self.derive_interval = derive_interval
        self.derive_sessions = derive
        self.retain_days = retain_days
        self.exporter = exporter  # told after each projection pass: sessions may be due
        self.syncer = syncer  # told likewise: there may be events the team server lacks
        self.settle_seconds = settle_seconds
        self._next_settle: float | None = None  # monotonic time of the next skill sync
        # What was said of live files left because of a masked secret: said once, not at
        # every sync while it holds.
        self._masked_said: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        # Managed skills' live SKILL.md files (watched: a hand edit is synced at once), and
        # the log position of the newest event that changed which files those are.
        self._live: dict[Path, str] = {}
        self._live_mark: int | None = -1
        self._derive_mark = 0  # log position up to which captured lines have been derived
        self._pending: set[SessionKey] = set()
        self._derive_floor: int | None = None  # log position up to which all is derived
        self._next_derive = 0.0  # monotonic time before which live sessions wait
        self._queue: queue.SimpleQueue[str | Path] = queue.SimpleQueue()
        self._stopping = False
        self._progress: _Progress | None = None
        self._early: EarlyDerivation | None = None  # sessions derived while a backfill captures
        self.redact_secrets = redact_secrets
        self.max_line_bytes = max_line_bytes
        self._attach(db)

    def _attach(self, db: Database) -> None:
        """Bind everything that works on the database to ``db`` (at start and on reopening)."""
        self.db = db
        self.engine = engine_for(db)
        self.log = EventLog(db)
        self._deriver: SessionDeriver | None = None
        self.capturer = Capturer(
            db,
            redact_secrets=self.redact_secrets,
            max_line_bytes=self.max_line_bytes,
            should_stop=lambda: self._stopping,
            on_batch=self._on_batch,
            confine=[(root.agent, root.path) for root in self.roots],
        )

    @property
    def deriver(self) -> SessionDeriver:
        """The session deriver of the database (built on first use)."""
        if self._deriver is None:
            from .deriving import SessionDeriver

            # Its workers price the responses they derive: the projections fold them next.
            self._deriver = SessionDeriver(self.db, workers=self.workers, price=True)
        return self._deriver

    # Signal handlers only record the request; the main loop acts on it.
    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._queue.put(_STOP)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._queue.put(_RESCAN)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_batch(self, consumed: int) -> None:
        self.notifier.tick()
        if self._progress is not None:
            self._progress.advance(consumed)
        if self._early is not None:
            early, self._early = self._early, None
            with self._survive("early derivation"):  # failing, it only stops deriving early
                early.committed()
                self._early = early

    # --- the work ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _survive(self, stage: str) -> Iterator[None]:
        """Run one stage after capture (projecting, deriving, packing, retention) so that its
        failure never stops capture: damage in the log (an event that cannot be read back)
        is one log line and the stage is tried again next time; what it was writing rolled
        back. Storage failures still propagate: the caller's retry loop handles those."""
        try:
            yield
        except Exception as exc:
            if storage_error(exc, self.db.path) is not None:
                raise
            if isinstance(exc, LogError | apsw.CorruptError):
                _log.error(f"{stage} failed", error=str(exc))
            else:  # a bug: its traceback belongs in the log
                _log.exception(f"{stage} failed")

    def backfill(self) -> ScanResult:
        """Capture everything already on disk, with progress; then derive what needs it."""
        with _collector_paused():
            return self._backfill()

    def _backfill(self) -> ScanResult:
        with self.db.read():
            self._derive_mark = self.log.head()

        def announce(files: list[tuple[Path, Store]]) -> None:
            pending = self._pending_bytes(files)
            self.notifier.status(f"backfill: {len(files)} files, {pending} bytes to capture")
            _log.info("backfill started", files=len(files), pending_bytes=pending)
            self._progress = _Progress(pending)
            self._early = self._early_derivation(files)

        def read(path: Path) -> None:
            if self._early is not None:
                self._early.read(path)

        early: EarlyDerivation | None = None
        try:
            try:
                result = full_pass(self.capturer, self.roots, announce, read)
            finally:
                if self._progress is not None:
                    self._progress.close()
                self._progress = None
            early, self._early = self._early, None
            _log.info(
                "backfill finished",
                files=result.files,
                lines=result.lines,
                bytes=result.bytes,
                errors=result.errors,
                stopped=result.stopped,
            )
            self._project()
            self.retain()
            if self.derive_sessions and not self._stopping:
                # Sessions with new lines, never derived, or derived by an older deriver.
                keys: set[SessionKey] = set()
                with self._survive("derivation"):
                    keys = self.deriver.touched_since(self._derive_mark) | self.deriver.stale()
                self._mark_derived()
                self._derive(keys, show_progress=True, early=early)
                _log.info(
                    "sessions derived",
                    sessions=len(keys),
                    beside_capture=early.used if early is not None else 0,
                )
                self.sync_skills()
        finally:
            for started in (early, self._early):
                if started is not None:
                    started.close()  # its workers, had no derivation taken them
            self._early = None
        # Everything on disk was just read: the payloads batches left one per row are packed
        # now, whatever their age.
        self.pack(everything=True)
        # The backfill's WAL is the largest the daemon will write: copy it back and empty it.
        self.db.checkpoint_truncate(timeout_s=1.0)
        return result

    def _early_derivation(self, files: list[tuple[Path, Store]]) -> EarlyDerivation | None:
        """Derivation beside capture, when there are idle cores and sessions enough to
        derive (see EarlyDerivation); None otherwise."""
        if not self.derive_sessions or self._stopping or not self.db.path.is_file():
            return None
        from .deriving import POOL_MIN_SESSIONS, EarlyDerivation, can_fork, idle_workers

        workers = idle_workers() if self.workers is None else self.workers
        if workers < 2 or not can_fork():
            return None
        early = EarlyDerivation(self.deriver, workers)
        sessions = 0
        with self._survive("early derivation"):
            sessions = early.plan(files)
        if sessions < POOL_MIN_SESSIONS:
            return None
        _log.debug("deriving beside capture", sessions=sessions, workers=workers)
        return early

    def pack(self, *, everything: bool = False) -> None:
        """Move payloads that live capture stored one per row into frames (EventLog.pack): a
        stream's once they fill a frame or it has been quiet for PACK_SETTLE seconds; and
        compress its frames again at the packing level then (EventLog.recompress)."""
        if self._stopping:
            return
        quiet = utc_now(0.0 if everything else PACK_SETTLE)
        moved = again = 0
        with self._survive("packing"):
            moved = self.log.pack(quiet)
            # Frames appends wrote fast are compressed harder once their stream is quiet; not
            # right after a backfill, which must end soon (the next rescan does it).
            again = 0 if everything else self.log.recompress(quiet)
        if moved or again:
            _log.debug("payloads packed into frames", events=moved, recompressed=again)

    def retain(self) -> None:
        """Forget sessions whose newest captured line is older than ``retain_days`` (if set)."""
        if self.retain_days is None or self._stopping:
            return
        from .forgetting import ForgetReport, forget_expired

        report: ForgetReport | None = None
        with self._survive("retention"):
            report = forget_expired(self.db, self.deriver, self.retain_days)
        if report is not None and report.erased.records:
            _log.info(
                "retention forgot sessions",
                sessions=len(report.plan.session_ids),
                lines=report.plan.lines,
                events=len(report.plan.positions),
                bytes=report.plan.bytes,
                days=self.retain_days,
                wal_cleared=report.erased.wal_cleared,
            )
            self._project()

    def _mark_derived(self) -> None:
        with self.db.read():
            self._derive_mark = self.log.head()

    def _derive(
        self,
        keys: set[SessionKey],
        *,
        show_progress: bool = False,
        early: EarlyDerivation | None = None,
    ) -> None:
        if not keys:
            return
        self.notifier.status(f"deriving {len(keys)} sessions")
        progress = _Progress(len(keys), "deriving", "sessions") if show_progress else None

        def step(_n: int, _total: int) -> None:
            self.notifier.tick()
            if progress is not None:
                progress.advance(1)

        started = time.monotonic()
        try:
            with self._survive("derivation"):
                result = self.deriver.derive(
                    keys,
                    progress=step,
                    should_stop=lambda: self._stopping,
                    early=early,
                    appended=self._fold,
                )
                _log.debug("derived", sessions=result.sessions, appended=result.appended)
        finally:
            if progress is not None:
                progress.close()
        # Re-deriving a live session reads all of it again: space the passes so that a long
        # session being written costs at most about a tenth of a core. The backfill's pass
        # derived every session once; timing the live passes by it would hold the first
        # live session back nine times the whole backfill's derivation (90 s for 10 s).
        elapsed = time.monotonic() - started
        spacing = self.derive_interval if show_progress else max(self.derive_interval, 9 * elapsed)
        self._next_derive = time.monotonic() + spacing
        self._project()
        self.sync_skills()

    def sync_skills(self, only: set[str] | None = None) -> None:
        """Record settled executions, decide, route and write the live files of every managed
        skill (or of ``only``); a skill that fails is logged and retried at the next sync,
        never fatal."""
        if self._stopping or not self.derive_sessions:
            return
        if only is None:
            self._next_settle = None
        changed = False
        from .versions.store import managed_skills
        from .versions.sync import sync_skill

        for skill in managed_skills(self.db):
            if only is not None and skill not in only:
                continue
            try:
                report = sync_skill(
                    self.db,
                    skill,
                    now=datetime.now(UTC),
                    settle=self.settle_seconds,
                    team=os.environ.get(TEAM_URL_ENV) or None,
                )
            except OSError as exc:
                if storage_error(exc, self.db.path) is not None:
                    raise
                # A folder or live file it cannot write: the user's to fix, in one line.
                where = f"{exc.filename}: " if exc.filename else ""
                _log.error("skill sync failed", skill=skill, error=f"{where}{exc.strerror or exc}")
                continue
            except Exception as exc:
                if storage_error(exc, self.db.path) is not None:
                    raise
                _log.exception("skill sync failed", skill=skill)
                continue
            changed = changed or bool(
                report.executions or report.corrections or report.decisions or report.edits
            )
            if report.executions or report.decisions or report.live_written or report.edits:
                _log.info(
                    "skill synced",
                    skill=skill,
                    executions=report.executions,
                    corrections=report.corrections,
                    decisions=report.decisions,
                    edits=report.edits,
                    next=report.routed,
                    live_written=report.live_written,
                )
            masked = (report.routed, tuple(report.live_masked))
            if report.live_masked and self._masked_said.get(skill) != masked:
                for note in report.masked_notes():
                    _log.warning("live file left as it is", skill=skill, problem=note)
            self._masked_said[skill] = masked
            if report.waiting:
                # Sessions still being written: look again once they may have settled.
                soon = time.monotonic() + max(0.2, min(self.settle_seconds / 2, 60.0))
                self._next_settle = min(self._next_settle or soon, soon)
            if report.unsettled_edits:
                # A live file edited by hand moments ago: take it once it has stood still.
                soon = time.monotonic() + 1.0
                self._next_settle = min(self._next_settle or soon, soon)
        if changed:
            self._project()

    def _pending_bytes(self, files: Sequence[tuple[Path, object]]) -> int:
        with self.db.read() as conn:
            offsets = dict(conn.execute("SELECT path, offset FROM capture_sources"))
        total = 0
        for path, _store in files:
            try:
                total += max(0, path.stat().st_size - offsets.get(path_text(path), 0))
            except OSError:
                continue
        return total

    def _unlistable(self, agent: str, exc: OSError) -> None:
        where, problem = folder_problem(exc)
        self.capturer.problem(where, agent, problem.kind, problem.message)

    def _project(self) -> None:
        self._fold()
        forget_prices_ahead()  # what derivation's workers priced is folded now
        if self.exporter is not None:
            self.exporter.poke()
        if self.syncer is not None:
            self.syncer.poke()

    def _fold(self) -> None:
        """Catch the projections up with the log (also what derivation appended so far, while
        its workers derive the rest)."""
        with self._survive("projection"):
            self.engine.catch_up(
                progress=lambda *_: self.notifier.tick(), should_stop=lambda: self._stopping
            )

    def _watch_live(self, watcher: Watcher) -> None:
        """Watch the live files of the skills managed now (re-read only when the events that
        say which files those are have moved on: a cheap indexed look-up otherwise)."""
        if not self.derive_sessions:
            return
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT max(position) FROM events WHERE type IN"
                f" ('SkillManaged', 'SkillUnmanaged', 'SkillLiveRemoved') AND {RARE_TYPES}"
            ).fetchone()
        mark = row[0] if row is not None else None
        if mark == self._live_mark:
            return
        from .versions.store import managed_skills, read_state

        live: dict[Path, str] = {}
        for skill in managed_skills(self.db):
            for path in read_state(self.db, skill).live_paths:
                live[Path(path)] = skill
        self._live, self._live_mark = live, mark
        watcher.watch_files(frozenset(live))

    def _capture_hints(self, paths: set[Path]) -> ScanResult:
        total = ScanResult()
        files: list[tuple[Path, Store]] = []
        for path in sorted(paths):
            if path.is_dir():
                files.extend(discover_under(path, self.roots, self._unlistable))
            else:
                store = store_for(path, self.roots)
                if store is not None:
                    files.append((path, store))
        if files:
            total = capture_all(self.capturer, files)
        return total

    def follow(self, watcher: Watcher) -> None:
        """Follow changes (hinted by ``watcher``, already running) until asked to stop."""
        self.notifier.status(f"watching {len(self.roots)} roots")
        _log.info("following", roots=[str(r.path) for r in self.roots])
        next_rescan = time.monotonic() + self.rescan_interval
        try:
            while not self._stopping:
                timeout = max(0.0, next_rescan - time.monotonic())
                if self._pending:
                    due = self._next_derive - time.monotonic()
                    timeout = min(timeout, max(0.0, due))
                if self._next_settle is not None:
                    timeout = min(timeout, max(0.0, self._next_settle - time.monotonic()))
                if self.notifier.watchdog_interval is not None:
                    timeout = min(timeout, self.notifier.watchdog_interval)
                if self.derive_sessions:
                    # A skill imported meanwhile (by skillopsctl) gets its live files watched.
                    timeout = min(timeout, LIVE_CHECK_SECONDS)
                items: list[str | Path] = []
                with contextlib.suppress(queue.Empty):
                    items.append(self._queue.get(timeout=timeout))
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self.notifier.tick()
                if self._stopping or _STOP in items:
                    break
                rescan = _RESCAN in items or time.monotonic() >= next_rescan
                self._watch_live(watcher)
                paths = {i for i in items if isinstance(i, Path)}
                edited = {self._live[p] for p in paths if p in self._live}
                paths -= set(self._live)
                if any(p.is_dir() for p in paths):
                    watcher.refresh()
                if _RESCAN in items and self.syncer is not None:
                    self.syncer.retry_now()  # SIGHUP: the team server may be back
                if rescan:
                    _log.info("rescan")
                    watcher.refresh()
                    result = full_pass(self.capturer, self.roots)
                    self.retain()
                    self.pack()
                    next_rescan = time.monotonic() + self.rescan_interval
                else:
                    result = self._capture_hints(paths)
                if result.lines or result.errors:
                    _log.debug("captured", lines=result.lines, bytes=result.bytes)
                    if self.derive_sessions:
                        self._pending |= self.deriver.touched_since(self._derive_mark)
                        self._mark_derived()
                    self._project()
                if self._pending and time.monotonic() >= self._next_derive:
                    pending, self._pending = self._pending, set()
                    self._derive(pending)
                elif rescan or (
                    self._next_settle is not None and time.monotonic() >= self._next_settle
                ):
                    self.sync_skills()
                    edited = set()
                if edited:
                    _log.info("live skill file changed", skills=sorted(edited))
                    self.sync_skills(only=edited)
        finally:
            watcher.stop()

    def run(self, *, once: bool) -> None:
        """Backfill, then (unless ``once``) follow; returns when done or asked to stop.

        When the database's storage fails (disk full, I/O error, read-only), what was being
        written is rolled back and dropped, and ``once`` raises :class:`StorageError`; the
        service instead logs it, waits (1 s doubling to 60 s, still answering SIGTERM and the
        watchdog), reopens the database and resumes as a restart would: from the committed
        offsets, so every line is captured exactly once.
        """
        self.notifier.send("READY=1", "STATUS=starting backfill")
        retry = StorageRetry(self.db.path, self.notifier)
        while True:
            try:
                if retry.failing:
                    self._reopen()
                self._attempt(once=once, retry=retry)
                break
            except Exception as exc:
                error = storage_error(exc, self.db.path)
                if error is None:
                    raise
                self._abandon()
                if once:
                    raise error from exc
                if not retry.wait(error, self._queue, lambda: self._stopping):
                    self._stopping = True
                    break
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        _log.info("stopped")

    def _attempt(self, *, once: bool, retry: StorageRetry) -> None:
        with self.db.read():
            head = self.log.head()
        # Sessions touched since the floor may have lost their derivation to a storage
        # failure (the backfill below derives only what it captures itself).
        if self._derive_floor is None:
            self._derive_floor = head
        if once:
            self.backfill()
            retry.recovered()
            return
        # Watch before scanning: a change during the backfill then leaves a hint, where
        # watching afterwards would miss it until the next periodic rescan.
        from .sources._watch import Watcher

        watcher = Watcher(self.roots, self._queue.put)
        watcher.start()
        try:
            self.backfill()
            if retry.failing and self.derive_sessions:
                self._pending |= self.deriver.touched_since(self._derive_floor)
            retry.recovered()
        except BaseException:
            watcher.stop()
            raise
        # Every session touched before the backfill's mark is derived; those touched later
        # are derived by the follower, or, if storage fails first, after it recovers.
        self._derive_floor = self._derive_mark
        if self._stopping:
            watcher.stop()
        else:
            self.follow(watcher)

    def _abandon(self) -> None:
        """Drop whatever a storage failure interrupted; nothing of it was committed."""
        self.capturer.discard()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        with contextlib.suppress(apsw.Error):
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
        with contextlib.suppress(apsw.Error):
            self.db.close()

    def _reopen(self) -> None:
        self._attach(Database.open(self.db.path, fsync_commits=False))


class StorageRetry:
    """Waiting out a storage failure: one log line per state, one more when it clears."""

    FIRST_DELAY = 1.0
    MAX_DELAY = 60.0

    def __init__(self, path: Path, notifier: Notifier) -> None:
        self.path = path
        self.notifier = notifier
        self.delay = self.FIRST_DELAY
        self._logged: set[str] = set()  # kinds of failure already told during this outage

    @property
    def failing(self) -> bool:
        return bool(self._logged)

    def wait(
        self,
        error: StorageError,
        stop: queue.SimpleQueue[str | Path],
        stopping: Callable[[], bool],
    ) -> bool:
        """Log ``error`` (once per kind) and back off; False if asked to stop meanwhile."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.MAX_DELAY)
        if error.kind not in self._logged:
            self._logged.add(error.kind)
            _log.error(f"{error}; retrying in {delay:g}s", kind=error.kind)
        else:
            _log.debug("storage still failing", kind=error.kind, retry_in=delay)
        self.notifier.status(f"{error}; retrying")
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0 and not stopping():
            self.notifier.tick()
            step = min(left, self.notifier.watchdog_interval or left)
            with contextlib.suppress(queue.Empty):
                # Hints and rescans are dropped: the next attempt starts with a full scan.
                if stop.get(timeout=step) == _STOP:
                    return False
        return not stopping()

    def recovered(self) -> None:
        """Say that storage works again, if it had failed."""
        if self._logged:
            _log.warning(f"database {self.path}: writable again; capture resumed")
            self.notifier.status("capture resumed")
        self._logged.clear()
        self.delay = self.FIRST_DELAY


class _Progress:
    """A progress bar on a terminal; periodic structured logs otherwise."""

    def __init__(self, total: int, label: str = "capturing", unit: str = "bytes") -> None:
        self.total = total
        self.done = 0
        self.label = label
        self.unit = unit
        self._last_log = time.monotonic()
        self._bar = None
        if sys.stderr.isatty() and total:
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr, show_pos=unit != "bytes"
            )
            self._bar.__enter__()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._last_log >= _PROGRESS_LOG_SECONDS:
            self._last_log = time.monotonic()
            _log.info(f"{self.label} progress", done=self.done, total=self.total, unit=self.unit)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def acquire_lock(db_path: Path) -> IO[str]:
    """Hold an exclusive lock beside the database for the daemon's lifetime."""
    fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        other = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"another skillopsd (pid {other}) is already running on {db_path}"
        ) from exc
    # The pid only makes the message above more helpful: on a full disk the lock holds
    # without it.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    os.register_at_fork(after_in_child=lambda: _release_in_child(handle))
    return handle


def _release_in_child(handle: IO[str]) -> None:
    """A forked child (a derive worker) lets go of the daemon's lock.

    A flock belongs to the open file, which a fork shares: a worker left alive by a daemon
    killed with SIGKILL would otherwise hold the lock, and every restart would find "another
    skillopsd" running. /dev/null takes the descriptor's place so the number stays valid.
    """
    if handle.closed:
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, handle.fileno())
        os.close(null)


def _parse_root(value: str) -> tuple[str, Path]:
    agent, sep, path = value.partition("=")
    if not sep or agent not in STORES or not path:
        known = "|".join(sorted(STORES))
        raise click.BadParameter(f"expected AGENT=PATH with AGENT one of {known}, got {value!r}")
    return agent, Path(path)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    metavar="PATH",
    envvar=DB_ENV,
    default=None,
    help=f"Database file (env {DB_ENV}; default $XDG_DATA_HOME/skillops/skillops.db).",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    metavar="AGENT=PATH",
    help="Capture AGENT's transcripts from PATH instead of its default roots (repeatable).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Capture what is on disk, then exit (with --sync-to: after sending it all; exit 2 when"
    " the server could not take it, 1 when it refused this log's chain).",
)
@click.option("--no-redact", is_flag=True, help="Store lines without masking secrets.")
@click.option(
    "--max-line-bytes",
    type=click.IntRange(1024, MAX_LINE_LIMIT),
    default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    help="Longer lines are recorded as capture errors.",
)
@click.option(
    "--rescan-interval",
    type=FiniteRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Seconds between full rescans (the watcher's backstop).",
)
@click.option(
    "--derive-interval",
    type=FiniteRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Least seconds between two derivations of live sessions (longer for long sessions).",
)
@click.option(
    "--derive-workers",
    type=click.IntRange(1, 64),
    default=None,
    metavar="N",
    help="Processes deriving sessions beside the daemon's own (default: one per idle core,"
    " at most 3, judged by the load average; 1: derive in the daemon's process only).",
)
@click.option(
    "--no-derive",
    is_flag=True,
    help="Capture only; derive later (skillopsctl rederive, or the next start without it).",
)
@click.option(
    "--retain",
    "retain_days",
    # 100 years: a datetime reaches back to year 1, so a larger number cannot be a cutoff.
    type=FiniteRange(min=0, min_open=True, max=36525),
    default=None,
    metavar="DAYS",
    help="Forget sessions whose newest line was captured more than DAYS ago"
    " (at start and at every rescan; default: keep everything).",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    envvar=TRACES_ENDPOINT_ENV,
    default=None,
    help=f"Export each session as an OTLP trace to URL/v1/traces once it settles, and again"
    f" when it changes (env {TRACES_ENDPOINT_ENV}; default: export nothing).",
)
@click.option(
    "--otlp-header",
    "otlp_headers",
    multiple=True,
    metavar="K=V",
    help="HTTP header for the OTLP receiver (repeatable).",
)
@click.option(
    "--otlp-settle",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_SETTLE_SECONDS,
    show_default=True,
    help="Seconds a session must be quiet before it is exported (a receiver such as Phoenix"
    " keeps the first copy of a span: a session sent halfway would stay as it was then).",
)
@click.option(
    "--otlp-project",
    default=DEFAULT_PROJECT,
    show_default=True,
    help="openinference.project.name: the Phoenix project the traces land in.",
)
@click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_SETTLE_SECONDS,
    show_default=True,
    help="A session of a managed skill counts as an execution once it has had no new line"
    " this long, or as soon as its agent wrote its end.",
)
@click.option(
    "--sync-to",
    "sync_url",
    metavar="URL",
    envvar=TEAM_URL_ENV,
    default=None,
    help=f"Push the log to a team PostgreSQL, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, as"
    f" it grows (env {TEAM_URL_ENV}; @FILE reads it from FILE: a password on the command line"
    " is in ps for the daemon's life; default: sync nothing). Capture never waits on it.",
)
@click.option(
    "--sync-content",
    type=click.Choice(["derived", "all", "none"]),
    default="derived",
    show_default=True,
    help="What --sync-to sends: derived (no transcript lines, no message text), all (every"
    " payload), none (labels and decisions only).",
)
@click.option(
    "--sync-batch",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Events per server transaction of --sync-to.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v debug).")
@click.option("--log-level", type=click.Choice(_logging.LEVELS), default=None)
@click.version_option(package_name="skillops", prog_name="skillopsd")
def main(
    db: str | None,
    roots: tuple[str, ...],
    once: bool,
    no_redact: bool,
    max_line_bytes: int,
    rescan_interval: float,
    derive_interval: float,
    derive_workers: int | None,
    no_derive: bool,
    retain_days: float | None,
    otlp_endpoint: str | None,
    otlp_headers: tuple[str, ...],
    otlp_settle: float,
    otlp_project: str,
    settle_seconds: float,
    sync_url: str | None,
    sync_content: str,
    sync_batch: int,
    verbose: int,
    log_level: str | None,
) -> None:
    """Capture Claude Code and Codex transcripts into the skillops event log."""
    _logging.configure(log_level or ("debug" if verbose else "info"))
    os.umask(0o077)  # everything the daemon writes (db, WAL, lock) is the user's alone
    try:
        overrides = [_parse_root(r) for r in roots]
        headers: list[tuple[str, str]] = []
        if otlp_headers or otlp_endpoint:
            from .export import parse_header, traces_url

            headers = [parse_header(h) for h in otlp_headers]
            if otlp_endpoint:
                traces_url(otlp_endpoint)
        if sync_url is not None and not sync_url.strip():
            sync_url = None  # an empty SKILLOPS_SYNC_URL: no sync, as if unset
        if sync_url is not None:
            from .team.live import check_url
            from .team.urls import on_command_line_warning, read_url, secrets

            typed = (
                click.get_current_context().get_parameter_source("sync_url")
                == click.core.ParameterSource.COMMANDLINE
            )
            if typed and not sync_url.strip().startswith("@") and secrets(sync_url):
                # A daemon lives for weeks: its command line is in ``ps`` all along.
                _log.warning(on_command_line_warning("--sync-to", TEAM_URL_ENV))
            sync_url = check_url(read_url(sync_url, "--sync-to"))
    except (click.BadParameter, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    path = Path(db) if db else default_db_path()
    notifier = Notifier.from_env()
    opened = _open(path, create_dirs=db is None, once=once, notifier=notifier)
    if opened is None:
        notifier.close()
        return  # asked to stop while waiting for storage
    database, lock = opened
    exporter = None
    if otlp_endpoint:  # off unless asked: nothing leaves the machine by default
        from .export import LiveExporter

        exporter = LiveExporter(
            database.path, otlp_endpoint, headers, settle=otlp_settle, project=otlp_project
        )
        exporter.start()
    syncer = None
    if sync_url:  # off unless asked, like the exporter
        from .team import Content
        from .team.live import LiveSync

        syncer = LiveSync(
            database.path, sync_url, Content(sync_content), batch=sync_batch, once=once
        )
        syncer.start()
    daemon = Daemon(
        database,
        resolve_roots(overrides),
        redact_secrets=not no_redact,
        max_line_bytes=max_line_bytes,
        rescan_interval=rescan_interval,
        derive_interval=derive_interval,
        derive=not no_derive,
        retain_days=retain_days,
        notifier=notifier,
        exporter=exporter,
        syncer=syncer,
        settle_seconds=settle_seconds,
        workers=derive_workers,
    )
    daemon.install_signal_handlers()
    _log.info("starting", db=str(database.path), roots=[str(r.path) for r in daemon.roots])
    _make_private(database.path)
    try:
        daemon.run(once=once)
    except StorageError as exc:  # only with --once: the service waits instead
        click.echo(safe(f"skillopsd: {exc}"), err=True)
        sys.exit(2)
    finally:
        if exporter is not None:
            exporter.stop(timeout=120.0 if once else 15.0, drain=once)
        if syncer is not None:
            # The service's stop has 15 s (TimeoutStopSec): the batch in flight ends in far
            # less, or is abandoned to the server's rollback.
            syncer.stop(timeout=600.0 if once else 8.0, drain=once)
        notifier.close()
        with contextlib.suppress(apsw.Error):
            daemon.db.close()
        lock.close()
    if once and syncer is not None and syncer.failure is not None:
        # As ``skillopsctl sync``: 2 when the server could not take it, 1 when it refused
        # this log's chain; what was captured is kept either way.
        status, why = syncer.failure
        click.echo(safe(f"skillopsd: team sync did not complete: {why}"), err=True)
        sys.exit(status)


def _make_private(path: Path) -> None:
    """Tighten the database's folder and files to 0700/0600 (one log line each); what cannot
    be tightened is logged as a warning, and ``skillopsctl status`` reports it too."""
    from .events._private import tighten

    done, failed = tighten(path, default_db_path().parent)
    for found in done:
        _log.info(
            "permissions tightened",
            path=found.path,
            was=f"{found.mode:04o}",
            now=f"{found.wanted:04o}",
        )
    for found in failed:
        _log.warning("permissions too loose", path=found.path, problem=found.describe())


def _open(
    path: Path, *, create_dirs: bool, once: bool, notifier: Notifier
) -> tuple[Database, IO[str]] | None:
    """Open the database and take its lock; None if stopped while waiting for storage.

    A database whose storage fails at start (disk full, I/O error, read-only) is a one-line
    error and exit 2 with ``--once``; the service instead says so once and waits for it, as it
    does when storage fails later: under systemd, waiting is kinder than a restart loop.
    """
    stop: queue.SimpleQueue[str | Path] = queue.SimpleQueue()
    stopping = False

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        stop.put(_STOP)

    retry = StorageRetry(path, notifier)
    while True:
        database: Database | None = None
        try:
            database = Database.open(path, create_dirs=create_dirs, fsync_commits=False)
            lock = acquire_lock(database.path)
        except AlreadyRunning as exc:
            assert database is not None
            database.close()
            click.echo(safe(f"skillopsd: {exc}"), err=True)
            sys.exit(2)
        except (LogError, OSError) as exc:
            if database is not None:
                database.close()
            error = storage_error(exc, path)
            if error is None or once:
                click.echo(safe(f"skillopsd: {error or exc}"), err=True)
                sys.exit(2)
            if not retry.failing:
                # Only while waiting: a daemon that opens at once keeps the default
                # handlers until its own are installed.
                previous = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
                notifier.send("READY=1")
            if not retry.wait(error, stop, lambda: stopping):
                return None
            continue
        if retry.failing:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if stopping:
                database.close()
                lock.close()
                return None
        retry.recovered()
        return database, lock
