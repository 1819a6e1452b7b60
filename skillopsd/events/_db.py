"""Opening the database file safely, its schema, and write transactions."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import apsw

from ._compress import Codecs
from ._frames import Frames
from .errors import DatabaseOpenError, LogBusyError

APPLICATION_ID = 0x534B4F50  # "SKOP": marks a SQLite file as ours
SCHEMA_VERSION = 5
DEFAULT_BUSY_TIMEOUT_MS = 60_000
PAGE_SIZE = 16384
WAL_SIZE_LIMIT = 4 * 1024 * 1024


# Schema 1 as first shipped. A new database runs it and then every migration, so a fresh
# database and a migrated one are the same database (one code path, tested by every test).
_SCHEMA_1 = """
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream         TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema         INTEGER NOT NULL,
    recorded_at    TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream, stream_version)
);
CREATE INDEX events_by_type ON events (type, position);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused'); END;
CREATE TABLE projection_checkpoints (
    name     TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL
);
-- Capture's checkpoint: one row per transcript file, updated in the same transaction as
-- the events read from it, so a crash never loses or repeats a line.
CREATE TABLE capture_sources (
    source_id       TEXT PRIMARY KEY,
    agent           TEXT NOT NULL,
    path            TEXT NOT NULL,
    device          INTEGER,
    inode           INTEGER,
    fingerprint     TEXT NOT NULL,
    fingerprint_len INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    offset          INTEGER NOT NULL,
    session         TEXT NOT NULL,
    parent_session  TEXT NOT NULL,
    lines           INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX capture_sources_by_inode ON capture_sources (device, inode);
CREATE INDEX capture_sources_by_path ON capture_sources (path);
"""

# Schema 2: payload digests, compression, erasure, the head anchor. No event is rewritten:
# rows of schema 1 keep ``digest`` NULL and their chain format (hash over the raw payload
# bytes); they stay verifiable but cannot be erased provably (their hash needs the bytes).
# Rows of schema 2 store an empty ``prev_hash`` (it is the previous row's ``hash``; verify
# recomputes it) and the sha256 of the uncompressed payload in ``digest``, which is what
# the chain commits to, so a payload can be erased and the chain still verifies.
_MIGRATE_1_TO_2 = """
ALTER TABLE events ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN digest BLOB;
DROP TRIGGER events_no_update;
-- The one UPDATE allowed: emptying the payload of a schema-2 row that an erasure record,
-- appended in the same transaction, names; no other column may change.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (
    NEW.position IS OLD.position AND NEW.event_id IS OLD.event_id
    AND NEW.stream IS OLD.stream AND NEW.stream_version IS OLD.stream_version
    AND NEW.type IS OLD.type AND NEW.schema IS OLD.schema
    AND NEW.recorded_at IS OLD.recorded_at AND NEW.prev_hash IS OLD.prev_hash
    AND NEW.hash IS OLD.hash AND NEW.codec IS OLD.codec AND NEW.digest IS OLD.digest
    AND OLD.digest IS NOT NULL AND NEW.data = x''
    AND EXISTS (SELECT 1 FROM erasures WHERE erasures.position = OLD.position)
)
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
CREATE TABLE erasures (
    position  INTEGER PRIMARY KEY,
    erased_by INTEGER NOT NULL
);
CREATE TRIGGER erasures_need_record BEFORE INSERT ON erasures
WHEN NOT (
    NEW.position < NEW.erased_by
    AND NEW.erased_by = (SELECT max(position) FROM events)
    AND EXISTS (
        SELECT 1 FROM events WHERE position = NEW.erased_by AND type = 'PayloadsErased'
    )
)
BEGIN SELECT RAISE(ABORT, 'an erasure needs its PayloadsErased record, appended just now'); END;
CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
BEGIN SELECT RAISE(ABORT, 'erasures are append-only: UPDATE refused'); END;
CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
BEGIN SELECT RAISE(ABORT, 'erasures are append-only: DELETE refused'); END;
CREATE TABLE payload_dictionaries (
    id     INTEGER PRIMARY KEY CHECK (id >= 2),
    sha256 BLOB NOT NULL,
    data   BLOB NOT NULL
);
CREATE TRIGGER payload_dictionaries_no_update BEFORE UPDATE ON payload_dictionaries
BEGIN SELECT RAISE(ABORT, 'a compression dictionary never changes: UPDATE refused'); END;
CREATE TRIGGER payload_dictionaries_no_delete BEFORE DELETE ON payload_dictionaries
BEGIN SELECT RAISE(ABORT, 'a compression dictionary never changes: DELETE refused'); END;
-- The head anchor: outside the events table, updated in every append's transaction, so a
-- log that lost its tail no longer ends where its anchor says.
CREATE TABLE chain_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);
INSERT INTO chain_head (id, position, hash)
    SELECT 1, position, hash FROM events ORDER BY position DESC LIMIT 1;
-- Capture (issue 7): a source's size when last seen, bytes lost when it vanished before it
-- was read to its end, and a digest of the committed bytes just before its offset; and the
-- problems (unreadable, not a regular file...) currently open, each recorded once.
ALTER TABLE capture_sources ADD COLUMN seen_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE capture_sources ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE capture_sources ADD COLUMN tail_digest TEXT NOT NULL DEFAULT '';
-- Issue 12: what a document source (a file rewritten whole) has captured, per record.
ALTER TABLE capture_sources ADD COLUMN doc_state BLOB NOT NULL DEFAULT x'';
CREATE TABLE capture_problems (
    path    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    agent   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (path, kind)
);
"""

# Schema 3: the type index covers only the rare types. Lines and spans are nearly every row
# and are read by position range (projections, rederive), never looked up by type alone;
# indexing them cost 2 MB per 57,000 rows. SQLite uses a partial index only if the query's
# WHERE holds its condition word for word: a query by type alone (``type = 'X'``) scans the
# whole table. EventLog.read(types=...) adds RARE_TYPES itself; SQL written elsewhere must
# add ``AND {RARE_TYPES}`` (exported by skillopsd.events).
RARE_TYPES = "type NOT IN ('TranscriptLineCaptured', 'SpanDerived')"
COMMON_TYPES = frozenset({"TranscriptLineCaptured", "SpanDerived"})
_MIGRATE_2_TO_3 = f"""
DROP INDEX events_by_type;
CREATE INDEX events_by_rare_type ON events (type, position) WHERE {RARE_TYPES};
"""

# Schema 4: payload frames (see _frames) and rows that store no digest. Rows of schema 4
# store ``digest`` NULL while their payload is there (the digest is the sha256 of the
# payload, which verify recomputes; 32 bytes a row saved) and a hash whose header leaves out
# the codec, so a payload can move into a frame without touching the chain. Erasing one
# moves its digest into the row (``codec = -2``) and empties its payload. Old rows keep
# their format: schema-2 rows are erased as before and are never framed (their hash covers
# their codec). Rows of each format are told apart by their cells: schema 1 has a prev_hash;
# schema 2 has a digest and a codec >= 0; schema 4 has neither digest nor prev_hash, or the
# digest with codec -2 once erased.
_MIGRATE_3_TO_4 = """
-- ``level``: the zstd level the frame was compressed at (appends use a fast one; the daemon
-- compresses quiet frames again at a higher one). Before ``data``, so reading it never reads
-- a frame's overflow pages.
CREATE TABLE payload_frames (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT    NOT NULL,
    codec  INTEGER NOT NULL,
    level  INTEGER NOT NULL,
    data   BLOB    NOT NULL
);
CREATE INDEX payload_frames_by_stream ON payload_frames (stream);
-- Where the packing of live payloads into frames resumes (EventLog.pack).
CREATE TABLE payload_packing (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO payload_packing (id, position) SELECT 1, coalesce(max(position), 0) FROM events;
DROP TRIGGER events_no_update;
-- The UPDATEs allowed: emptying the payload of a row an erasure record, appended in the same
-- transaction, names (a schema-2 row keeps its digest and codec; a schema-4 row gets its
-- digest and codec -2), and moving a schema-4 payload into a frame (codec -1). No column
-- the chain commits to may change.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (
    NEW.position IS OLD.position AND NEW.event_id IS OLD.event_id
    AND NEW.stream IS OLD.stream AND NEW.stream_version IS OLD.stream_version
    AND NEW.type IS OLD.type AND NEW.schema IS OLD.schema
    AND NEW.recorded_at IS OLD.recorded_at AND NEW.prev_hash IS OLD.prev_hash
    AND NEW.hash IS OLD.hash
    AND (
        (
            OLD.digest IS NOT NULL AND OLD.codec >= 0
            AND NEW.codec IS OLD.codec AND NEW.digest IS OLD.digest AND NEW.data = x''
            AND EXISTS (SELECT 1 FROM erasures WHERE erasures.position = OLD.position)
        ) OR (
            OLD.digest IS NULL AND OLD.prev_hash = x''
            AND NEW.codec = -2 AND length(NEW.digest) = 32 AND NEW.data = x''
            AND EXISTS (SELECT 1 FROM erasures WHERE erasures.position = OLD.position)
        ) OR (
            OLD.digest IS NULL AND OLD.prev_hash = x'' AND NEW.digest IS NULL
            AND NEW.codec = -1 AND length(NEW.data) > 0
        )
    )
)
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
"""

# Schema 5 (issue 19): digests of a line source's committed bytes in 64 KiB blocks (the last
# one partial), so a file rewritten anywhere before its offset is noticed (sources/_capture).
_MIGRATE_4_TO_5 = """
ALTER TABLE capture_sources ADD COLUMN blocks BLOB NOT NULL DEFAULT x'';
"""

_MIGRATIONS = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3, 3: _MIGRATE_3_TO_4, 4: _MIGRATE_4_TO_5}


def expected_triggers() -> dict[str, str]:
    """Trigger name -> the exact SQL a database of the current schema holds for it."""
    conn = apsw.Connection(":memory:")
    conn.execute(_SCHEMA_1)
    for version in range(1, SCHEMA_VERSION):
        conn.execute(_MIGRATIONS[version])
    triggers = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger'"))
    conn.close()
    return triggers


def scalar(conn: apsw.Connection, sql: str, args: tuple[object, ...] = ()) -> Any:
    """The first column of the first row ``sql`` returns (None when there is none)."""
    row = conn.execute(sql, args).fetchone()
    return row[0] if row is not None else None


class Database:
    """One apsw connection to a skillops database, with safe open and write transactions."""

    def __init__(self, conn: apsw.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._depth = 0
        self._codecs: Codecs | None = None
        self._frames: Frames | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create_dirs: bool = False,
        create: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        fsync_commits: bool = True,
    ) -> Database:
        """Open (creating if absent, unless ``create`` is false) the database at ``path``.

        With ``create_dirs`` a missing parent directory is created with mode 0700 (the
        default location); otherwise it is an error. A file that is not a skillops database,
        or one written by a newer schema, is refused before anything is written to it.

        Every commit is fsynced (``synchronous=FULL``): a human's annotation or decision
        must survive power loss. The capture daemon passes ``fsync_commits=False``
        (``synchronous=NORMAL``): a commit still survives any crash of the process, and
        after a power loss the last captures roll back *together with their offsets* while
        the transcript is still on disk, so they are simply captured again.
        """
        path = Path(path).expanduser()
        if not create and not path.exists():
            raise DatabaseOpenError(f"{path}: no skillops database there")
        parent = path.parent
        if not parent.is_dir():
            if not create_dirs:
                raise DatabaseOpenError(f"{path}: directory {parent} does not exist")
            # Another process may create it between the check and here: that is no error
            # (exist_ok); a file in its place is (mkdir raises).
            try:
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseOpenError(
                    f"{path}: cannot create directory {parent}: {exc.strerror or exc}"
                ) from exc
            os.chmod(parent, 0o700)
        is_new = not path.exists()
        if is_new:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                is_new = False
            except OSError as exc:
                raise DatabaseOpenError(f"{path}: cannot create: {exc.strerror}") from exc
            else:
                os.close(fd)
        else:
            _check_existing_file(path)
        try:
            conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
        except apsw.Error as exc:
            raise DatabaseOpenError(f"{path}: cannot open: {exc}") from exc
        conn.set_busy_timeout(busy_timeout_ms)
        db = cls(conn, path)
        # Two processes opening a new database at once can deadlock on the switch to WAL;
        # SQLite then answers BUSY at once rather than waiting, so wait here, within the
        # busy timeout.
        deadline = time.monotonic() + busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                db._validate_and_init(is_new, fsync_commits)
                break
            except (apsw.BusyError, LogBusyError) as exc:
                if time.monotonic() + delay > deadline:
                    conn.close()
                    raise LogBusyError(f"{path}: database is locked by another process") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except apsw.Error as exc:
                conn.close()
                raise DatabaseOpenError(f"{path}: not a skillops database ({exc})") from exc
            except BaseException:
                conn.close()
                raise
        return db

    def _validate_and_init(self, is_new: bool, fsync_commits: bool) -> None:
        conn = self.conn
        # Read-only probes first, in one snapshot (another process may be initialising the
        # file right now): nothing below writes to a file we have not recognised.
        with self.read():
            app_id = scalar(conn, "PRAGMA application_id")
            user_version = scalar(conn, "PRAGMA user_version")
            tables = scalar(conn, "SELECT count(*) FROM sqlite_schema")
        if app_id != APPLICATION_ID:
            if app_id != 0 or tables or user_version:
                raise DatabaseOpenError(f"{self.path}: not a skillops database")
        elif user_version > SCHEMA_VERSION:
            raise DatabaseOpenError(
                f"{self.path}: schema version {user_version} is newer than this skillops "
                f"understands ({SCHEMA_VERSION}); upgrade skillops"
            )
        if app_id != APPLICATION_ID:
            # Transcript lines are kilobytes each: larger pages mean fewer overflow pages.
            # (The page size is fixed once the file leaves rollback-journal mode.)
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute(f"PRAGMA synchronous={'FULL' if fsync_commits else 'NORMAL'}")
        # 32 MiB of page cache keeps the indexes' working set in memory during a backfill.
        conn.execute("PRAGMA cache_size=-32768")
        # Deleted or moved content is overwritten with zeros, never left in unused space:
        # otherwise a page split leaves stale copies of rows that erasure could not reach.
        conn.execute("PRAGMA secure_delete=ON")
        # A WAL keeps its high-water size after a checkpoint: without a limit, a backfill
        # leaves ~18 MB of WAL beside the database for as long as the daemon runs.
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        adopted = False
        if app_id != APPLICATION_ID:
            with self.write():
                # Re-check under the write lock: another process may have initialised it.
                if scalar(conn, "PRAGMA application_id") != APPLICATION_ID:
                    conn.execute(_SCHEMA_1)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute("PRAGMA user_version=1")
                    self._migrate()
                    adopted = True
        elif user_version < SCHEMA_VERSION:
            with self.write():
                self._migrate()
        if is_new or adopted:  # an existing empty file made ours is private like a new one
            os.chmod(self.path, 0o600)

    def _migrate(self) -> None:
        """Bring the schema to the current version in place (inside a write transaction)."""
        version = scalar(self.conn, "PRAGMA user_version")
        while version < SCHEMA_VERSION:
            self.conn.execute(_MIGRATIONS[version])
            version += 1
            self.conn.execute(f"PRAGMA user_version={version}")

    @property
    def codecs(self) -> Codecs:
        """This database's payload compressors (dictionaries are cached: they never change)."""
        if self._codecs is None:
            self._codecs = Codecs(self.conn)
        return self._codecs

    @property
    def frames(self) -> Frames:
        """This database's payload frames (read through a cache of decompressed frames)."""
        if self._frames is None:
            self._frames = Frames(self.conn, self.codecs)
        return self._frames

    def checkpoint_truncate(self, timeout_s: float = 5.0) -> bool:
        """Copy the WAL into the database file and truncate the WAL to zero bytes.

        A reader holding an old snapshot blocks it; retry until ``timeout_s``. Returns
        whether the WAL is now empty.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            try:
                row = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                busy, log_frames = (row[0], row[1]) if row else (1, -1)
            except apsw.BusyError:
                busy, log_frames = 1, -1
            if not busy and log_frames <= 0:
                return True
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    @contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except apsw.BusyError as exc:
            raise LogBusyError(f"{self.path}: database is locked by another writer") from exc
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            # A dictionary first copied in by this transaction is gone again: reload. A
            # frame it wrote is gone too, and its id may be given again: forget the cache.
            self._codecs = None
            self._frames = None
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    @property
    def in_write(self) -> bool:
        """Whether a write transaction of this connection is open."""
        return self._depth > 0

    @contextmanager
    def read(self) -> Iterator[apsw.Connection]:
        """A read transaction: one consistent snapshot; never blocks the writer (WAL)."""
        if self._depth or self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            with suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _check_existing_file(path: Path) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DatabaseOpenError(f"{path}: cannot open: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DatabaseOpenError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise DatabaseOpenError(f"{path}: cannot read: {exc.strerror}") from exc
    if head and head != b"SQLite format 3\x00":
        raise DatabaseOpenError(f"{path}: not a skillops database (not SQLite)")
    if not os.access(path, os.W_OK):
        raise DatabaseOpenError(f"{path}: not writable")
