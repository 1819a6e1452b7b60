"""The projection engine: folds events into tables, checkpointed with the rows they wrote."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import ClassVar

import apsw
import msgspec

from .._logging import get_logger
from ..events import CorruptEventError, Database, EventLog, LogError, RecordedEvent
from ..events.types import Event

DEFAULT_CHUNK = 5000
# A projection that folds in SQL (fold_range) takes this many chunks' worth of positions
# per transaction.
_RANGE_CHUNKS = 20
_log = get_logger(__name__)


class Projection(ABC):
    """A pure fold over the log into tables it owns.

    ``apply`` sees events in position order and may read only the event and its own tables:
    never the clock, a random source, the file system or configuration. Bumping
    ``version`` makes the engine drop the tables and replay from position 0.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]]
    # Event type names this projection folds; None folds every event.
    handles: ClassVar[frozenset[str] | None] = None
    # False: ``apply`` reads only the envelope, so payload bytes are not read back; such a
    # projection also sees erased events (their envelope stays in the log).
    needs_payload: ClassVar[bool] = True

    @abstractmethod
    def create(self, conn: apsw.Connection) -> None:
        """Create this projection's (empty) tables."""

    @abstractmethod
    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        """Fold one event into this projection's tables."""

    def apply_many(self, conn: apsw.Connection, events: list[RecordedEvent]) -> None:
        """Fold consecutive events; override to fold a chunk faster with the same result."""
        for event in events:
            self.apply(conn, event)

    def fold_range(self, conn: apsw.Connection, after: int, upto: int) -> int | None:
        """Fold the events at positions ``(after, upto]`` in SQL, without reading them out;
        the number folded. None (the default): the engine reads them for ``apply_many``.
        Only for a projection that reads no payload and whose fold SQL can express exactly."""
        return None


def _fusable(projection: Projection) -> bool:
    """Whether ``projection`` can share a read of the log with others like it: it folds named
    types and reads their payloads (a projection of every event's envelope reads the most
    rows and decodes none: sharing would make it decode them all)."""
    return projection.handles is not None and projection.needs_payload


class _Decoded(RecordedEvent, frozen=True):
    """An event read for several projections, its payload decoded once for all of them."""

    decoded: Event | None = None

    @property
    def payload(self) -> Event:
        if self.decoded is not None:
            return self.decoded
        return RecordedEvent.payload.fget(self)  # type: ignore[attr-defined,no-any-return]


def _decoded(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """``events`` with each payload decoded now (one that cannot be is decoded again, and
    raises, when a projection asks for it)."""
    out: list[RecordedEvent] = []
    for e in events:
        decoded: Event | None = None
        if not e.erased and e.fault is None:
            with suppress(LogError):
                decoded = e.payload
        out.append(
            _Decoded(
                e.position,
                e.event_id,
                e.stream,
                e.stream_version,
                e.type,
                e.schema,
                e.recorded_at,
                e.data,
                e.hash,
                e.erased,
                e.fault,
                decoded,
            )
        )
    return out


class ProjectionState(msgspec.Struct, frozen=True):
    """A projection's checkpoint (last position applied) and lag behind the head."""

    name: str
    version: int
    checkpoint: int
    lag: int


ProgressCallback = Callable[[str, int, int], None]


class ProjectionEngine:
    """Keeps a set of projections in step with the log of one database."""

    def __init__(self, db: Database, projections: Sequence[Projection]) -> None:
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate projection names: {names}")
        self.db = db
        self.log = EventLog(db)
        self.projections = list(projections)

    def _checkpoint(self, projection: Projection) -> tuple[int, int] | None:
        row = self.db.conn.execute(
            "SELECT version, position FROM projection_checkpoints WHERE name = ?",
            (projection.name,),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _set_checkpoint(self, projection: Projection, position: int) -> None:
        self.db.conn.execute(
            "INSERT INTO projection_checkpoints (name, version, position) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET version = excluded.version,"
            " position = excluded.position",
            (projection.name, projection.version, position),
        )

    def _reset(self, projection: Projection) -> None:
        conn = self.db.conn
        for table in projection.tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        projection.create(conn)
        self._set_checkpoint(projection, 0)

    def _behind(self) -> bool:
        with self.db.read():
            head = self.log.head()
            for projection in self.projections:
                cp = self._checkpoint(projection)
                if cp is None or cp[0] != projection.version or cp[1] < head:
                    return True
        return False

    def catch_up(
        self,
        *,
        chunk: int = DEFAULT_CHUNK,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> int:
        """Bring every projection to the head of the log; returns the number of events applied.

        Work is committed in chunks, each with its checkpoint, so a crash or a concurrent
        catch-up in another process never applies an event twice or skips one; ``should_stop``
        is asked between chunks (the rest is caught up next time).
        """
        if not self._behind():
            return 0
        applied, erasures = self._catch_up(chunk, progress, should_stop)
        if erasures and not self.db.conn.in_transaction:
            # Rows of forgotten sessions were deleted (zeroed: secure_delete): the pages that
            # held them must leave the WAL too, for the zeroed ones in the database file.
            self.db.checkpoint_truncate()
        return applied

    def _catch_up(
        self,
        chunk: int,
        progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> tuple[int, int]:
        applied = 0
        erasures = 0
        pending = list(self.projections)
        while pending:
            if should_stop is not None and should_stop():
                return applied, erasures
            with self.db.write():
                head = self.log.head()
                positions: dict[str, int] = {}
                for projection in pending:
                    cp = self._checkpoint(projection)
                    if cp is None or cp[0] != projection.version:
                        self._reset(projection)
                        positions[projection.name] = 0
                    else:
                        positions[projection.name] = cp[1]
                pending = [p for p in pending if positions[p.name] < head]
                if not pending:
                    break
                group, reached, count, erased = self._step(pending, positions, head, chunk)
                applied += count
                erasures += erased
            for projection in group:
                if progress is not None:
                    progress(projection.name, reached, head)
                if reached >= head:
                    _log.debug("projection caught up", projection=projection.name, head=head)
            if reached >= head:
                pending = [p for p in pending if p not in group]
        return applied, erasures

    def _step(
        self, pending: list[Projection], positions: dict[str, int], head: int, chunk: int
    ) -> tuple[list[Projection], int, int, int]:
        """One chunk of the first pending projection's catch-up, inside the caller's write
        transaction; ``(projections folded, position reached, events, erasures)``.

        The projections at the same checkpoint that read payloads of named types are caught
        up together: each chunk of the log is read (and each payload decoded) once for all
        of them, then each folds its own types and commits its own checkpoint (none reads
        another's tables, so the order they fold in is free). One that folds in SQL
        (:meth:`Projection.fold_range`) folds a range of positions without reading it out.
        """
        lead = pending[0]
        position = positions[lead.name]
        upto = min(head, position + chunk * _RANGE_CHUNKS)
        folded = lead.fold_range(self.db.conn, position, upto)
        if folded is not None:
            self._set_checkpoint(lead, upto)
            return [lead], upto, folded, 0
        group = [lead]
        if _fusable(lead):
            group += [p for p in pending[1:] if _fusable(p) and positions[p.name] == position]
        types = (
            None if lead.handles is None else frozenset().union(*(p.handles or () for p in group))
        )
        events = list(
            self.log.read(
                after=position,
                upto=head,
                types=types,
                limit=chunk,
                with_data=lead.needs_payload,
            )
        )
        # Fewer than a full chunk means nothing more these projections fold up to the head,
        # so their checkpoints can jump there.
        reached = head if len(events) < chunk else events[-1].position
        if len(group) > 1:
            events = _decoded(events)
        count = erasures = 0
        for projection in group:
            mine = (
                events
                if len(group) == 1 or projection.handles is None
                else [e for e in events if e.type in projection.handles]
            )
            count += len(mine)
            if projection.needs_payload:
                mine = self._readable(projection, mine)
            erasures += sum(e.type == "PayloadsErased" for e in mine)
            self._apply(projection, mine)
            self._set_checkpoint(projection, reached)
        return group, reached, count, erasures

    @staticmethod
    def _readable(projection: Projection, events: list[RecordedEvent]) -> list[RecordedEvent]:
        # An erased event's payload is gone: it is folded by no projection, and the
        # PayloadsErased that erased it undoes what it had folded.
        events = [e for e in events if not e.erased]
        # A damaged one cannot be read: folding the rest keeps every view (and the daemon)
        # going; verify reports it at its position.
        unreadable = [e for e in events if e.fault is not None]
        if unreadable:
            for event in unreadable:
                _log.warning(
                    "event unreadable, not folded",
                    projection=projection.name,
                    position=event.position,
                    fault=event.fault,
                )
            events = [e for e in events if e.fault is None]
        return events

    def _apply(self, projection: Projection, events: list[RecordedEvent]) -> None:
        """Fold ``events``; one whose stored bytes decompress but do not decode is left out
        (its fold undone, in a savepoint) and the rest folded again: a damaged event never
        holds every view back. Deterministic: the same log folds the same way."""
        while True:
            try:
                with self.db.conn:  # a savepoint inside the chunk's transaction
                    projection.apply_many(self.db.conn, events)
                return
            except CorruptEventError as exc:
                if not any(e.position == exc.position for e in events):
                    raise  # another event's damage (read by position): not this chunk's
                _log.warning(
                    "event unreadable, not folded",
                    projection=projection.name,
                    position=exc.position,
                    fault=exc.reason,
                )
                events = [e for e in events if e.position != exc.position]

    def rebuild(self, *, progress: ProgressCallback | None = None) -> int:
        """Drop every projection's tables and replay the log from position 0."""
        with self.db.write():
            for projection in self.projections:
                self._reset(projection)
        return self.catch_up(progress=progress)

    def states(self) -> list[ProjectionState]:
        """Each projection's checkpoint and lag, without catching up."""
        with self.db.read():
            head = self.log.head()
            out = []
            for projection in self.projections:
                cp = self._checkpoint(projection)
                position = cp[1] if cp and cp[0] == projection.version else 0
                out.append(
                    ProjectionState(
                        name=projection.name,
                        version=projection.version,
                        checkpoint=position,
                        lag=head - position,
                    )
                )
        return out

    def digest(self) -> str:
        """sha256 over the content of every projection table, independent of insertion order."""
        h = hashlib.sha256()
        enc = msgspec.msgpack.Encoder()
        with self.db.read() as conn:
            for projection in sorted(self.projections, key=lambda p: p.name):
                for table in sorted(projection.tables):
                    h.update(enc.encode(["table", projection.name, table]))
                    columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
                    if not columns:
                        h.update(b"missing")
                        continue
                    h.update(enc.encode(columns))
                    order = ", ".join(str(i + 1) for i in range(len(columns)))
                    for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
                        h.update(enc.encode(row))
        return h.hexdigest()
