"""Running the deriver over the log: which sessions, from which captured lines, and appending
the result as ``SpanDerived`` / ``DeriveErrorRecorded`` / ``SessionDerived`` events.

Derived events have content ids, so deriving a session again appends only the spans that are
new or changed (and a new ``SessionDerived`` only when the summary changed): a live session's
events grow with its changes, not with the square of its length.

After a forget (``PayloadsErased``) a session is derived only from the lines that remain:
erased lines are skipped, a session with no line left is not derived at all (it is not
brought back into existence from nothing), and lines captured later (the agent appending to
the same file) are new content that derive a new session under the same id. Ids of events
derived after an erasure are salted with its position: the erased events keep their ids in
the log, and an identical re-derived span must not be taken for a duplicate of one whose
payload is gone.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path

import msgspec

from ._logging import get_logger
from .derive import DERIVER_VERSION, Derivation, SourceLines, derive_session, session_id
from .events import (
    CorruptEventError,
    Database,
    EncodedEvent,
    EventDecodeError,
    EventLog,
    LogError,
    decode_payload,
    encode_event,
    stream_payloads,
)
from .events.types import (
    DeriveErrorRecorded,
    PayloadsErased,
    SessionDerived,
    SessionPurged,
    SourceFileMoved,
    SourceFileTracked,
    SpanDerived,
    TranscriptLineCaptured,
)
from .pricing import PriceArgs, Priced, load_prices, price, price_ahead
from .projections.usage import price_args
from .sources import SessionRef, Store, path_text, peek_session, source_stream
from .versions.observed import Observed, VersionRecorder, observed_in

DeriveFunction = Callable[..., Derivation]
Progress = Callable[[int, int], None]
_msgpack = msgspec.msgpack.Encoder()


class _LineView(msgspec.Struct):
    generation: int
    offset: int
    line: bytes


_line_view = msgspec.msgpack.Decoder(_LineView)
_BATCH_EVENTS = 5000
# A batch appended early, to be folded while workers derive (SessionDeriver.derive's
# ``appended``), holds at least this many events.
_FOLD_WAITING_EVENTS = 500
# Below this many sessions a pool costs more (forking, shipping results) than it saves.
POOL_MIN_SESSIONS = 8
# Beyond about this many, the one process appending what the workers derive is the limit.
MAX_WORKERS = 3
# Niceness of the workers deriving beside a backfill's capture (see EarlyDerivation): the
# scheduler then gives capture, the longest path, its core, and the workers the rest.
_NICE = 5
_log = get_logger(__name__)


class SessionKey(msgspec.Struct, frozen=True, order=True):
    """A session as the agent knows it."""

    agent: str
    native_id: str

    @property
    def session_id(self) -> str:
        return session_id(self.agent, self.native_id)


class _Source(msgspec.Struct):
    source_id: str
    agent: str
    path: str
    session: str
    parent_session: str


class DeriveResult(msgspec.Struct):
    """What a derivation pass did."""

    sessions: int = 0
    appended: int = 0
    errors: int = 0


def session_stream(session_id: str) -> str:
    """The log stream of one session's derived events."""
    return f"session:{session_id}"


class _SpanStamp(msgspec.Struct, tag="SpanDerived", tag_field="type"):
    """What a rederive reads of a stored span to tell whether the new one says the same."""

    span_id: str
    deriver_version: int


_stamp_decoder = msgspec.msgpack.Decoder(_SpanStamp)


class _Pending(msgspec.Struct):
    """A derived event waiting in a batch, with the erasure epoch it was derived under."""

    event: EncodedEvent
    session_id: str
    epoch: int


def idle_workers() -> int:
    """How many processes to derive with: one per core, if a core is idle besides this one.

    Workers cost ~10% more CPU in all (forking, shipping results); that pays only when they
    run beside this process, not when other work already keeps every core busy (measured on
    a shared 2-core machine: slower there than deriving here alone).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return min(cores, MAX_WORKERS) if busy <= cores - 1 else 1


def can_fork() -> bool:
    """Whether worker processes can be forked here (not on Windows, say)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _read_lines(db: Database, source_id: str) -> list[tuple[int, bytes]]:
    """The latest generation's captured lines of one file, in file order."""
    by_generation: dict[int, list[tuple[int, bytes]]] = {}
    rows = stream_payloads(db, source_stream(source_id), "TranscriptLineCaptured")
    for position, schema, data in rows:
        line: _LineView | TranscriptLineCaptured
        try:
            if schema == TranscriptLineCaptured.SCHEMA:
                line = _line_view.decode(data)  # only the three fields needed
            else:
                upcast = decode_payload("TranscriptLineCaptured", schema, data)
                if not isinstance(upcast, TranscriptLineCaptured):
                    raise EventDecodeError(f"not a TranscriptLineCaptured: {type(upcast)}")
                line = upcast
        except (msgspec.MsgspecError, LogError) as exc:
            raise CorruptEventError(position, str(exc)) from exc
        by_generation.setdefault(line.generation, []).append((line.offset, line.line))
    if not by_generation:
        return []
    return sorted(by_generation[max(by_generation)])


def _source_lines(db: Database, files: list[_Source]) -> list[SourceLines]:
    """The captured lines of every file of a session (inside a read transaction)."""
    return [
        SourceLines(
            source_id=source.source_id,
            path=source.path,
            session=source.session,
            parent_session=source.parent_session,
            lines=_read_lines(db, source.source_id),
        )
        for source in files
    ]


class _Failed(msgspec.Struct, frozen=True):
    """A session that could not be derived: a deriver exception (with its traceback), or
    lines that cannot be read back (a damaged event; no traceback)."""

    message: str
    trace: str = ""


def _unreadable(exc: LogError) -> _Failed:
    return _Failed(f"cannot read its captured lines: {exc}")


class _Derived(msgspec.Struct, frozen=True):
    """A derivation made ready to append where it was derived (in a worker, encoding and
    hashing every span, and reading which of them an older deriver already stored, is work
    the appending process is spared; it receives bytes, not objects to rebuild)."""

    session: SessionDerived
    # Its spans that are new or changed (:func:`_changed`), errors and session, in that
    # order, encoded; none when ``is_session`` is false.
    events: list[EncodedEvent]
    errors: int  # records it could not read
    is_session: bool = True
    observed: list[Observed] = []  # skill bodies its session loaded
    # What its responses are priced by (:func:`_price_args`), when asked for
    # (SessionDeriver's ``price``): encoded, handed to the pricer as they are.
    prices: bytes = b""


# What one derivation gave: None when the session was forgotten and nothing came since.
_Outcome = _Derived | _Failed | None


class _Worker(msgspec.Struct):
    """What a pool worker derives with (set once per process)."""

    db: Database
    derive: DeriveFunction
    version: int
    price: bool


_worker: _Worker | None = None


def _init_worker(
    path: str, derive: DeriveFunction, version: int, nice: int, price: bool, parent: int
) -> None:
    global _worker
    _follow_parent(parent)
    if nice:
        with suppress(OSError):
            os.nice(nice)
    _worker = _Worker(Database.open(Path(path), create=False), derive, version, price)


def _follow_parent(parent: int) -> None:
    """Make a forked worker end with the process that made it.

    Workers wait on a queue whose pipe they themselves keep open, so a parent killed with
    SIGKILL would leave them waiting forever. The parent's signal handlers only enqueue for
    its own loop, which a worker does not run: SIGTERM ends a worker again, and Ctrl-C in a
    terminal (sent to the whole group) is the parent's to handle.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # The parent may have died before the line above took effect.
    if os.getppid() != parent:
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _derive_in_worker(key: SessionKey, files: list[_Source], epoch: int) -> _Outcome:
    """Read and derive one session in a pool worker (its own connection: reads run beside
    the parent's appends)."""
    assert _worker is not None
    try:
        with _worker.db.read():
            sources = _source_lines(_worker.db, files)
    except CorruptEventError as exc:
        return _unreadable(exc)
    w = _worker
    return _run_derive(w.derive, key, sources, epoch, w.version, w.db, w.price)


def _marks(db: Database, files: list[_Source]) -> list[int]:
    """Each file's stream version: what a session's derivation read, as of now (inside a
    read transaction). Equal marks later mean the same lines and lifecycle events."""
    out = []
    for source in files:
        row = db.conn.execute(
            "SELECT max(stream_version) FROM events WHERE stream = ?",
            (source_stream(source.source_id),),
        ).fetchone()
        out.append(row[0] or 0 if row is not None else 0)
    return out


def _derive_early_in_worker(
    key: SessionKey, files: list[_Source], epoch: int
) -> tuple[_Outcome, list[int] | None]:
    """:func:`_derive_in_worker`, with the marks of what it read (None: read nothing, the
    session is derived again when its turn comes)."""
    assert _worker is not None
    w = _worker
    try:
        with w.db.read():
            marks = _marks(w.db, files)
            sources = _source_lines(w.db, files)
    except CorruptEventError:
        return None, None
    return _run_derive(w.derive, key, sources, epoch, w.version, w.db, w.price), marks


def _root(agent: str, native: str, threads: dict[str, str]) -> SessionKey:
    """The session a file of ``agent``'s session ``native`` belongs to: a Codex child thread
    belongs to its root thread (``threads``: thread id -> parent thread id)."""
    if agent != "codex":
        return SessionKey(agent, native)
    seen = {native}
    while threads.get(native) and threads[native] in threads and threads[native] not in seen:
        native = threads[native]
        seen.add(native)
    return SessionKey("codex", native)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while one session is derived.

    Its decoded records are tens of thousands of small containers without cycles: the
    collector, run every 700 allocations, scans them and frees nothing (7% of a rederive
    of the real corpus). What the session leaves behind is collected after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _pool(deriver: SessionDeriver, workers: int, nice: int = 0) -> ProcessPoolExecutor:
    """Forked worker processes deriving as ``deriver`` does, each with its own connection
    to its database (``nice``: how much lower their priority is than this process's)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(
            str(deriver.db.path),
            deriver._derive,
            deriver.deriver_version,
            nice,
            deriver.price,
            os.getpid(),
        ),
    )


class _Early(msgspec.Struct):
    """A derivation started early: the files it was given and, once done, what it derived
    with the marks of what it read (:func:`_derive_early_in_worker`)."""

    files: list[_Source]
    epoch: int
    future: Future[tuple[_Outcome, list[int] | None]]


def _run_derive(
    derive: DeriveFunction,
    key: SessionKey,
    sources: list[SourceLines],
    epoch: int,
    version: int,
    db: Database,
    price: bool = False,
) -> _Outcome:
    """Derive one session from its lines and make it ready to append (``db``: where spans
    an older deriver stored are read, to leave out those that say the same)."""
    if epoch and not any(s.lines for s in sources):
        return None  # forgotten, and nothing captured since
    try:
        with _collector_paused():
            derivation: Derivation = derive(
                key.agent, key.native_id, sources, deriver_version=version
            )
        if not derivation.is_session:
            return _Derived(derivation.session, [], len(derivation.errors), is_session=False)
        stream = session_stream(derivation.session.session_id)
        # Encoding is part of deriving: an event the log cannot store (an integer beyond 64
        # bits read from a record) is this session's failure, not the run's.
        events = _changed(db, stream, derivation.spans, epoch)
        events += [encode_event(stream, e, epoch) for e in (*derivation.errors, derivation.session)]
        return _Derived(
            derivation.session,
            events,
            len(derivation.errors),
            observed=observed_in(derivation),
            prices=_price_args(derivation.spans) if price else b"",
        )
    except Exception as exc:  # a deriver bug must not stop capture or other sessions
        return _Failed(f"deriver failed: {type(exc).__name__}: {exc}", traceback.format_exc())


def _changed(db: Database, stream: str, spans: list[SpanDerived], epoch: int) -> list[EncodedEvent]:
    """``spans`` encoded to append to ``stream``, but for those an older deriver version
    stored saying exactly the same (those are not encoded again).

    A version bump re-derives every session, and most spans come out as before but for
    their ``deriver_version`` stamp: appending them all again grew the log by a tenth of
    the transcripts' size per bump. A span left out stays current through its older
    event (the newest SpanDerived of its id), which says the same.
    """
    # Each stored span's id and version only (its attributes skipped, not built), and its
    # bytes: a new span with the old version's stamp encodes to the same bytes when it says
    # the same (encoding is deterministic). An older schema is decoded whole.
    stored: dict[str, tuple[int, bytes | SpanDerived]] = {}
    try:
        with db.read():
            for _position, schema, data in stream_payloads(db, stream, "SpanDerived"):
                if schema == SpanDerived.SCHEMA:
                    stamp = _stamp_decoder.decode(data)
                    stored[stamp.span_id] = (stamp.deriver_version, data)  # newest wins
                    continue
                old_span = decode_payload("SpanDerived", schema, data)
                if isinstance(old_span, SpanDerived):
                    stored[old_span.span_id] = (old_span.deriver_version, old_span)
    except (LogError, msgspec.MsgspecError):
        stored = {}  # a damaged span: append them all (each id is stored once anyway)
    kept = []
    for span in spans:
        old = stored.get(span.span_id)
        if old is not None and old[0] != span.deriver_version:
            restamped = msgspec.structs.replace(span, deriver_version=old[0])
            if (
                restamped == old[1]
                if isinstance(old[1], SpanDerived)
                else _msgpack.encode(restamped) == old[1]
            ):
                continue
        kept.append(encode_event(stream, span, epoch))
    return kept


def _price_args(spans: list[SpanDerived]) -> bytes:
    """What each response among ``spans`` is priced by, as the usage projection will look
    it up (encoded; empty when none is)."""
    args = [a for a in map(price_args, (s for s in spans if s.kind == "LLM")) if a is not None]
    return _msgpack.encode(args) if args else b""


_args_decoder = msgspec.msgpack.Decoder(list[PriceArgs])
_priced_decoder = msgspec.msgpack.Decoder(list[tuple[PriceArgs, Priced | None]])


def _init_pricer(nice: int, parent: int) -> None:
    _follow_parent(parent)
    if nice:
        with suppress(OSError):
            os.nice(nice)
    load_prices()  # now, while there is nothing to price yet


def _price_all(encoded: bytes) -> bytes:
    """The price of each of the encoded :data:`PriceArgs` (in the pricer's process)."""
    out: list[tuple[PriceArgs, Priced | None]] = []
    for args in _args_decoder.decode(encoded):
        try:
            out.append((args, price(*args)))
        except Exception:  # the projection prices it itself (and fails as it does)
            continue
    return _msgpack.encode(out)


class _Pricer:
    """One process pricing the responses the workers derived, for the usage projection's
    fold in this one (:func:`skillopsd.pricing.price_ahead`).

    Loading the price table takes a fifth of a second of the process that loads it: each
    worker pricing what it derived loaded it once more. The pricer loads it as soon as it
    starts (beside a backfill's capture), and this process never does.
    """

    def __init__(self, nice: int) -> None:
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_pricer,
            initargs=(nice, os.getpid()),
        )
        self._asked: list[Future[bytes]] = []
        self._pool.submit(int)  # starts the process (and its loading) now

    def ask(self, encoded: bytes) -> None:
        """Price the encoded arguments (see :meth:`collect`)."""
        self._asked.append(self._pool.submit(_price_all, encoded))

    def collect(self) -> None:
        """Hand over every price asked so far, waiting for those not yet computed. One the
        pricer could not give is priced by the projection itself, as without a pricer."""
        for future in self._asked:
            try:
                price_ahead(_priced_decoder.decode(future.result()))
            except Exception as exc:
                _log.warning("prices not computed ahead", error=f"{type(exc).__name__}: {exc}")
        self._asked.clear()

    def close(self) -> None:
        self._asked.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class SessionDeriver:
    """Derives sessions of one database, keeping its view of the tracked files up to date."""

    def __init__(
        self,
        db: Database,
        *,
        deriver_version: int = DERIVER_VERSION,
        derive: DeriveFunction = derive_session,
        workers: int | None = None,
        price: bool = False,
    ) -> None:
        """``workers``: processes deriving beside this one when there are many sessions
        (default: :func:`idle_workers` at each pass; 1 derives here, in this process).
        ``price``: the responses workers derive are priced by a process of their own
        (:class:`_Pricer`) and the prices handed over (:func:`skillopsd.pricing.price_ahead`),
        for a caller that folds the usage projection next: this process then need not load
        the price table (a fifth of a second)."""
        self.price = price
        self._pricer: _Pricer | None = None
        self.db = db
        self.log = EventLog(db)
        self.deriver_version = deriver_version
        self._derive = derive
        self.workers = workers
        self._sources: dict[str, _Source] = {}
        self._threads: dict[str, str] = {}  # Codex thread id -> parent thread id
        # Session id -> position of the newest erasure of its derivation.
        self._epochs: dict[str, int] = {}
        self._seen = 0
        self._versions = VersionRecorder(db)

    def _refresh(self) -> None:
        """Fold source lifecycle events appended since the last call."""
        with self.db.read():
            for event in self.log.read(
                after=self._seen, types=("SourceFileTracked", "SourceFileMoved", "PayloadsErased")
            ):
                self._seen = event.position
                if event.fault is not None:  # damaged: the file it tracked stays unknown
                    _log.error("event unreadable", position=event.position, fault=event.fault)
                    continue
                try:
                    payload = event.payload
                except LogError as exc:
                    _log.error("event unreadable", position=event.position, fault=str(exc))
                    continue
                if isinstance(payload, PayloadsErased):
                    for sid in payload.session_ids:
                        self._epochs[sid] = event.position
                elif isinstance(payload, SourceFileTracked):
                    self._sources[payload.source_id] = _Source(
                        payload.source_id,
                        payload.agent,
                        payload.path,
                        payload.session,
                        payload.parent_session,
                    )
                    if payload.agent == "codex":
                        self._threads[payload.session] = payload.parent_session
                elif isinstance(payload, SourceFileMoved) and payload.source_id in self._sources:
                    self._sources[payload.source_id].path = payload.new_path

    def _key(self, source: _Source) -> SessionKey:
        """The session a file belongs to: a Codex child thread belongs to its root thread."""
        return _root(source.agent, source.session, self._threads)

    def all_sessions(self) -> set[SessionKey]:
        """Every session with at least one tracked file."""
        self._refresh()
        return {self._key(s) for s in self._sources.values()}

    def touched_since(self, position: int) -> set[SessionKey]:
        """Sessions whose files gained lines (or were reset) after ``position``."""
        self._refresh()
        with self.db.read() as conn:
            streams = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT stream FROM events WHERE position > ? AND type IN"
                    " ('TranscriptLineCaptured', 'SourceFileReset', 'SourceFileTracked')",
                    (position,),
                )
            ]
        keys = set()
        for stream in streams:
            source = self._sources.get(stream.removeprefix("source:"))
            if source is not None:
                keys.add(self._key(source))
        return keys

    def stale(self) -> set[SessionKey]:
        """Sessions never derived, or last derived by an older deriver (projections caught up)."""
        current: dict[str, int] = {}
        with self.db.read() as conn:
            for sid, version in conn.execute("SELECT session_id, deriver_version FROM p_sessions"):
                current[sid] = version
            purged = {r[0] for r in conn.execute("SELECT session_id FROM p_purged")}
        return {
            key
            for key in self.all_sessions()
            if key.session_id not in purged
            and current.get(key.session_id, -1) < self.deriver_version
        }

    def _lines(self, source_id: str) -> list[tuple[int, bytes]]:
        """The latest generation's captured lines of one file, in file order."""
        return _read_lines(self.db, source_id)

    def epoch(self, session_id: str) -> int:
        """Position of the newest erasure of ``session_id``'s derivation (0: never erased)."""
        return self._epochs.get(session_id, 0)

    def key_of(self, source_id: str) -> SessionKey | None:
        """The session a tracked file belongs to (None for an unknown source)."""
        self._refresh()
        source = self._sources.get(source_id)
        return self._key(source) if source is not None else None

    def files_of(self, key: SessionKey) -> list[tuple[str, str]]:
        """(source id, the agent's session id in that file) of every file of a session."""
        return self.files_by_session().get(key, [])

    def files_by_session(self) -> dict[SessionKey, list[tuple[str, str]]]:
        """:meth:`files_of` of every session at once."""
        return {
            key: [(s.source_id, s.session) for s in files]
            for key, files in self._files_by_session().items()
        }

    def file_groups(self) -> dict[SessionKey, list[_Source]]:
        """Every session's files, to pass to :meth:`sources_of` for many sessions in a row."""
        return self._files_by_session()

    def _files_by_session(self) -> dict[SessionKey, list[_Source]]:
        """Every session's files, in a stable order (one pass over the tracked files)."""
        self._refresh()
        groups: dict[SessionKey, list[_Source]] = {}
        for source in sorted(self._sources.values(), key=lambda s: s.source_id):
            groups.setdefault(self._key(source), []).append(source)
        return groups

    def sources_of(
        self, key: SessionKey, groups: dict[SessionKey, list[_Source]] | None = None
    ) -> list[SourceLines]:
        """The captured lines of every file of a session."""
        files = (groups if groups is not None else self._files_by_session()).get(key, [])
        with self.db.read():
            return _source_lines(self.db, files)

    def _merged_children(
        self, key: SessionKey, root_session: str, files: list[_Source]
    ) -> list[EncodedEvent]:
        """Retire the own sessions of threads now known to belong to ``key``'s session."""
        children = {s.session for s in files if s.session != key.native_id}
        if not children:
            return []
        out = []
        with self.db.read() as conn:
            for child in sorted(children):
                child_id = session_id(key.agent, child)
                row = conn.execute(
                    "SELECT 1 FROM p_sessions WHERE session_id = ?", (child_id,)
                ).fetchone()
                if row is None:
                    continue
                merged = SessionDerived(
                    session_id=child_id,
                    agent=key.agent,
                    native_session_id=child,
                    deriver_version=self.deriver_version,
                    merged_into=root_session,
                )
                epoch = self.epoch(root_session)
                out.append(encode_event(session_stream(child_id), merged, epoch))
        return out

    def _not_a_session(self, key: SessionKey) -> list[EncodedEvent]:
        """Withdraw what an older deriver showed for files that hold no conversation."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT 1 FROM p_sessions WHERE session_id = ?", (key.session_id,)
            ).fetchone()
        if row is None:
            return []
        purged = SessionPurged(
            session_id=key.session_id,
            author="skillopsd",
            reason=f"not a session: no conversation in its files (deriver {self.deriver_version})",
        )
        return [encode_event(session_stream(key.session_id), purged)]

    def _outcomes(
        self,
        ordered: list[SessionKey],
        groups: dict[SessionKey, list[_Source]],
        epochs: dict[SessionKey, int],
        should_stop: Callable[[], bool] | None,
        early: EarlyDerivation | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Iterator[tuple[SessionKey, _Outcome]]:
        """Each session's derivation, in ``ordered`` order; until ``should_stop`` says so.
        ``waiting`` is called before waiting for a worker's derivation that is not done.

        Many sessions are derived by worker processes (forked: nothing to import, and the
        deriver need not be picklable), each reading the lines itself; this process meanwhile
        appends what they derived before. Derivation is pure, so where it runs changes nothing.
        With ``early``, sessions its workers derived while capture went on are taken from it
        (and its workers derive the rest), each only if its files still hold what was read.
        """
        workers = idle_workers() if self.workers is None else self.workers
        pool = early.detach_pool() if early is not None else None
        if pool is None and (
            workers > 1
            and len(ordered) >= POOL_MIN_SESSIONS
            and self.db.path.is_file()
            and can_fork()
        ):
            pool = self._start_workers(workers)
        if pool is None:
            for key in ordered:
                if should_stop is not None and should_stop():
                    return  # what is left stays stale and is derived at the next start
                yield key, self._derive_here(key, groups, epochs[key])
            return
        try:
            started: dict[SessionKey, Future[_Outcome] | _Early] = {}
            for key in ordered:
                taken = early.take(key, groups.get(key, []), epochs[key]) if early else None
                if taken is not None:
                    started[key] = taken
            # The largest sessions first: the last one a worker starts is then a small one,
            # and no worker derives alone long after the others are done. (They are still
            # appended in ``ordered`` order: the log is the same.)
            for key in self._largest_first([k for k in ordered if k not in started], groups):
                started[key] = pool.submit(_derive_in_worker, key, groups.get(key, []), epochs[key])
            futures = [started[key] for key in ordered]
            for key, future in zip(ordered, futures, strict=True):
                if should_stop is not None and should_stop():
                    return
                pending = future.future if isinstance(future, _Early) else future
                if waiting is not None and not pending.done():
                    waiting()
                if isinstance(future, _Early):
                    outcome, marks = future.future.result()
                    with self.db.read():
                        current = _marks(self.db, future.files)
                    if marks != current:  # its files changed since: derived again, here
                        outcome = self._derive_here(key, groups, epochs[key])
                    elif early is not None:
                        early.used += 1
                    yield key, outcome
                else:
                    yield key, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _start_workers(self, workers: int, nice: int = 0) -> ProcessPoolExecutor:
        """Worker processes (:func:`_pool`), and the pricer when this deriver prices."""
        if self.price and self._pricer is None:
            self._pricer = _Pricer(nice)
        return _pool(self, workers, nice)

    def _close_pricer(self) -> None:
        if self._pricer is not None:
            self._pricer.close()
            self._pricer = None

    def _largest_first(
        self, keys: list[SessionKey], groups: dict[SessionKey, list[_Source]]
    ) -> list[SessionKey]:
        """``keys``, the sessions with the most captured bytes first (ties in key order)."""
        with self.db.read() as conn:
            captured = dict(conn.execute("SELECT source_id, bytes FROM capture_sources"))
        size = {k: sum(captured.get(s.source_id, 0) for s in groups.get(k, [])) for k in keys}
        return sorted(keys, key=lambda k: (-size[k], k))

    def _derive_here(
        self, key: SessionKey, groups: dict[SessionKey, list[_Source]], epoch: int
    ) -> _Outcome:
        try:
            sources = self.sources_of(key, groups)
        except CorruptEventError as exc:
            return _unreadable(exc)
        return _run_derive(self._derive, key, sources, epoch, self.deriver_version, self.db)

    def derive(
        self,
        keys: Iterable[SessionKey],
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        early: EarlyDerivation | None = None,
        appended: Callable[[], None] | None = None,
    ) -> DeriveResult:
        """Derive ``keys`` and append what is new.

        A session's events are always appended in one transaction; several sessions share
        one when they are small, so a rederive of thousands of sessions is not thousands of
        commits. ``early``: derivations started while capture went on (see there).

        ``appended`` is called after a batch is appended while worker processes still derive
        the sessions that come next (this process would only wait for them): a caller that
        folds the derived events into projections next can fold what is appended meanwhile,
        and have only the last batch left to fold when derivation ends.
        """
        ordered = sorted(set(keys))
        try:
            return self._derive_all(ordered, progress, should_stop, early, appended)
        finally:
            if self._pricer is not None:
                self._pricer.collect()
            self._close_pricer()

    def _derive_all(
        self,
        ordered: list[SessionKey],
        progress: Progress | None,
        should_stop: Callable[[], bool] | None,
        early: EarlyDerivation | None,
        appended: Callable[[], None] | None,
    ) -> DeriveResult:
        groups = self._files_by_session()
        result = DeriveResult()
        batch: list[_Pending] = []

        def flush() -> None:
            if not batch:
                return
            with self.db.write():
                # A forget that committed while these were derived erased the lines they
                # came from: what was derived from them must not be appended after it.
                self._refresh()
                fresh = [p.event for p in batch if self.epoch(p.session_id) == p.epoch]
                if len(fresh) < len(batch):
                    _log.info("derivation dropped: its lines were forgotten meanwhile")
                result.appended += len(self.log.append_encoded(fresh).positions)
            batch.clear()

        def waiting() -> None:
            # Worth a transaction and a fold of its own only when the batch is not tiny.
            if appended is not None and len(batch) >= _FOLD_WAITING_EVENTS:
                flush()
                if self._pricer is not None:
                    self._pricer.collect()
                appended()

        epochs = {key: self.epoch(key.session_id) for key in ordered}
        outcomes = self._outcomes(ordered, groups, epochs, should_stop, early, waiting)
        for n, (key, outcome) in enumerate(outcomes, 1):
            epoch = epochs[key]
            sid = key.session_id  # a hash: once per session, not once per event
            if outcome is None:
                continue
            if isinstance(outcome, _Failed):
                if outcome.trace:
                    _log.error(
                        "deriver failed",
                        session=key.session_id,
                        native=key.native_id,
                        exception=outcome.trace,
                    )
                else:
                    _log.error(
                        "session not derived",
                        session=key.session_id,
                        native=key.native_id,
                        error=outcome.message,
                    )
                failed = DeriveErrorRecorded(
                    session_id=key.session_id,
                    deriver_version=self.deriver_version,
                    source_id="",
                    offset=0,
                    message=outcome.message,
                )
                failed_event = encode_event(session_stream(key.session_id), failed, epoch)
                batch.append(_Pending(failed_event, key.session_id, epoch))
                result.errors += 1
                continue
            if outcome.prices and self._pricer is not None:
                self._pricer.ask(outcome.prices)
            if not outcome.is_session:
                batch.extend(_Pending(e, sid, epoch) for e in self._not_a_session(key))
                continue
            batch.extend(_Pending(e, sid, epoch) for e in outcome.events)
            batch.extend(
                _Pending(e, sid, epoch)
                for e in self._merged_children(key, outcome.session.session_id, groups.get(key, []))
            )
            self._versions.note_all(outcome.observed)
            result.sessions += 1
            result.errors += outcome.errors
            if len(batch) >= _BATCH_EVENTS:
                flush()
            if progress is not None:
                progress(n, len(ordered))
        flush()
        # After the sessions they came from, so a version's first session is already stored.
        result.appended += self._versions.record()
        return result


class EarlyDerivation:
    """Sessions derived by worker processes while a backfill is still capturing other files.

    A backfill's capture keeps one core busy; deriving only after it leaves the others idle
    all that time. The files to capture are known before the first is read, and the session
    each belongs to is told by its head (as capture tells it), so a session can be derived
    as soon as the last of its files with lines to capture has been committed.

    Only the derivation runs early: it is pure, a function of the lines the session's files
    hold, read by the worker in its own snapshot. What it derived is appended by
    :meth:`SessionDeriver.derive`, in that method's order and with its checks, and only if
    the session's files, their stream versions and its erasure epoch are still what the
    worker read (otherwise the session is derived again then): the log comes out exactly as
    without it. A session told wrongly (a file rewritten meanwhile) costs a derivation, never
    a different result.

    Owned by the loop that captures: :meth:`read` and :meth:`committed` are called from
    capture's callbacks, :meth:`take` by the derivation that follows, :meth:`close` last.
    """

    def __init__(self, deriver: SessionDeriver, workers: int) -> None:
        self.deriver = deriver
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._started: dict[SessionKey, _Early] = {}
        # Session -> paths of its files still to be committed; agent -> paths of its files
        # whose session cannot be told before capture (no session of that agent starts
        # before they are committed).
        self._waiting: dict[SessionKey, set[str]] = {}
        self._unknown: dict[str, set[str]] = {}
        self._session_of: dict[str, SessionKey] = {}
        self._read: list[str] = []
        self._ready: list[SessionKey] = []
        # Sessions' files as tracked so far (folded from the deriver's view as it grows).
        self._groups: dict[SessionKey, dict[str, _Source]] = {}
        self._indexed = 0
        self.started = 0  # derivations started early
        self.used = 0  # of which appended as derived (the rest were derived again)

    def plan(self, files: Sequence[tuple[Path, Store]]) -> int:
        """Note which session each file with lines to capture belongs to; the number of
        sessions that will be derived early."""
        with self.deriver.db.read() as conn:
            tracked = {
                path: (offset, agent, session, parent)
                for path, offset, agent, session, parent in conn.execute(
                    "SELECT path, offset, agent, session, parent_session FROM capture_sources"
                )
            }
        self.deriver._refresh()
        threads = dict(self.deriver._threads)
        expected: list[tuple[str, str, SessionRef]] = []
        for path, store in files:
            text = path_text(path)
            try:
                size = path.stat().st_size
            except OSError:
                continue  # gone: nothing of it will be captured now
            known = tracked.get(text)
            if known is not None:
                offset, agent, session, parent = known
                if size <= offset:
                    continue  # nothing new in it
                ref: SessionRef | None = SessionRef(session, parent)
            else:
                agent, ref = store.agent, peek_session(path, store)
            if ref is None:
                self._unknown.setdefault(agent, set()).add(text)
                continue
            if agent == "codex":
                threads.setdefault(ref.session, ref.parent_session)
            expected.append((text, agent, ref))
        for text, agent, ref in expected:
            key = _root(agent, ref.session, threads)
            self._session_of[text] = key
            self._waiting.setdefault(key, set()).add(text)
        return len(self._waiting)

    def read(self, path: Path) -> None:
        """Capture has read ``path`` to its end (committed with the next batch)."""
        self._read.append(path_text(path))

    def committed(self) -> None:
        """A batch committed: the files read before it are in the log; start what is ready."""
        for text in self._read:
            key = self._session_of.pop(text, None)
            if key is not None:
                left = self._waiting.get(key)
                if left is not None:
                    left.discard(text)
                    if not left:
                        del self._waiting[key]
                        self._ready.append(key)
            for paths in self._unknown.values():
                paths.discard(text)
        self._read.clear()
        self._start()

    def _start(self) -> None:
        if not self._ready:
            return
        blocked = {agent for agent, paths in self._unknown.items() if paths}
        self._index()
        keep: list[SessionKey] = []
        for key in self._ready:
            if key.agent in blocked:
                keep.append(key)
                continue
            group = self._groups.get(key)
            if not group:
                continue  # nothing of it tracked (a file with no complete line)
            files = [msgspec.structs.replace(s) for _, s in sorted(group.items())]
            epoch = self.deriver.epoch(key.session_id)
            if self._pool is None:
                # Below the capturing process's priority: its core stays its own.
                self._pool = self.deriver._start_workers(self.workers, nice=_NICE)
            future = self._pool.submit(_derive_early_in_worker, key, files, epoch)
            self._started[key] = _Early(files, epoch, future)
            self.started += 1
        self._ready = keep

    def _index(self) -> None:
        """Fold the files tracked since the last call into their sessions' groups."""
        self.deriver._refresh()
        sources = self.deriver._sources
        for source in islice(sources.values(), self._indexed, None):
            key = self.deriver._key(source)
            self._groups.setdefault(key, {})[source.source_id] = source
        self._indexed = len(sources)

    def take(self, key: SessionKey, files: list[_Source], epoch: int) -> _Early | None:
        """The early derivation of ``key`` if it was given exactly ``files`` and ``epoch``."""
        started = self._started.pop(key, None)
        if started is None or started.files != files or started.epoch != epoch:
            return None
        return started

    def detach_pool(self) -> ProcessPoolExecutor | None:
        """The workers, handed to the derivation that takes what they derived (it shuts
        them down)."""
        pool, self._pool = self._pool, None
        return pool

    def close(self) -> None:
        """Stop the workers if no derivation took them (capture stopped, say)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self.deriver._close_pricer()  # started with the workers, unused as they were
        self._started.clear()


__all__ = [
    "DeriveResult",
    "EarlyDerivation",
    "SessionDeriver",
    "SessionKey",
    "can_fork",
    "idle_workers",
    "session_stream",
]
