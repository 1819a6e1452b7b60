"""``verify`` proves the whole log: every corruption class at its position, exit 1, no traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import apsw
import msgspec
import pytest
import zstandard
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.events import Database, EventLog, NewEvent, verify_chain
from skillopsd.events._chain import GENESIS_HASH, event_hash, event_hash_v4
from skillopsd.events._db import _SCHEMA_1, APPLICATION_ID, SCHEMA_VERSION, expected_triggers
from skillopsd.events.types import PayloadsErased, PolicySet, TranscriptLineCaptured

from .conftest import run_ctl

# Rows 1-100 plain zstd (as databases written before the shipped dictionary hold them),
# 101-120 with the shipped dictionary, 121 erases 7, 122-125 come after, each appended alone
# (one payload per row); 126-165 are one batch of one stream, stored in a payload frame.
PLAIN, DICT, ERASED, RECORD, FRAMED_AT, HEAD = 3, 105, 7, 121, 126, 165


def _line(i: int) -> NewEvent:
    body = {
        "type": "assistant" if i % 2 else "user",
        "sessionId": f"session-{i % 4}",
        "message": {"role": "assistant", "content": [{"type": "text", "text": f"step {i} " * 9}]},
    }
    return NewEvent(
        f"source:{i % 4}",
        TranscriptLineCaptured(
            agent="claude",
            source_id=str(i % 4),
            generation=1,
            offset=i * 100,
            line=msgspec.json.encode(body),
            captured_at="2025-01-01T00:00:00.000000Z",
        ),
    )


def _framed(i: int) -> NewEvent:
    line = _line(i)
    return NewEvent("source:framed", line.payload)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "pristine.db"
    db = Database.open(path)
    for i in range(100):
        EventLog(db, dictionary=False).append([_line(i)])
    log = EventLog(db)
    for i in range(100, 120):
        log.append([_line(i)])
    erasure = PayloadsErased(positions=[ERASED], reason="r", author="a", scope="source")
    log.erase([ERASED], NewEvent("erasure", erasure))
    log.append([NewEvent("p", PolicySet(name=f"after{i}", values={})) for i in range(4)])
    log.append([_framed(i) for i in range(40)])
    codecs = dict(db.conn.execute("SELECT position, codec FROM events"))
    assert codecs[PLAIN] == 1 and codecs[DICT] == 2 and codecs[RECORD] == 0
    assert codecs[ERASED] == -2 and {codecs[p] for p in range(FRAMED_AT, HEAD + 1)} == {-1}
    assert verify_chain(db).ok
    db.close()
    return path


def _copy(pristine: Path, dest: Path) -> Path:
    dest.write_bytes(pristine.read_bytes())
    return dest


_OTHER = zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(PolicySet(name="x", values={})))
_UNGUARD = "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;"

CASES = [
    # (name, sql, bad position, reason fragment)
    ("payload TEXT", f"UPDATE events SET data = 'hello' WHERE position = {PLAIN}", PLAIN, "TEXT"),
    (
        "payload cast",
        f"UPDATE events SET data = CAST(data AS TEXT) WHERE position = {DICT}",
        DICT,
        "holds TEXT",
    ),
    ("hash TEXT", "UPDATE events SET hash = 'x' WHERE position = 4", 4, "holds TEXT"),
    ("digest set", "UPDATE events SET digest = zeroblob(32) WHERE position = 9", 9, "content"),
    ("prev_hash set", "UPDATE events SET prev_hash = zeroblob(32) WHERE position = 9", 9, "prev"),
    ("position gap", "DELETE FROM events WHERE position = 50", 50, "gap"),
    ("cut tail", f"DELETE FROM events WHERE position > {HEAD - 2}", HEAD - 1, "removed"),
    # Cutting the erasure record too leaves the erased row unexplained: blamed on the cut,
    # where the log was shortened, not on the erased row (issue 19, item 2).
    (
        "cut erasure",
        f"DELETE FROM events WHERE position >= {RECORD}",
        RECORD,
        "removed from the end",
    ),
    ("anchor hash", "UPDATE chain_head SET hash = zeroblob(32)", HEAD, "anchor"),
    ("anchor missing", "DELETE FROM chain_head", None, "anchor"),
    (
        "undecompressible",
        f"UPDATE events SET data = x'28b52ffd00' WHERE position = {PLAIN}",
        PLAIN,
        "decompress",
    ),
    ("digest mismatch", f"UPDATE events SET data = ? WHERE position = {PLAIN}", PLAIN, "digest"),
    ("codec changed", f"UPDATE events SET codec = 0 WHERE position = {PLAIN}", PLAIN, "content"),
    ("cleared, no erasure", "UPDATE events SET data = x'' WHERE position = 8", 8, "PayloadsErased"),
    (
        "bad dictionary",
        "DROP TRIGGER payload_dictionaries_no_update;"
        " UPDATE payload_dictionaries SET data = substr(data, 1, 2000)",
        101,
        "dictionary 2",
    ),
    # TEXT cells of invalid UTF-8 outside the events rows: reported where they are, not as
    # "position 1" (reading them as text raised before the walk began).
    (
        "dictionary invalid UTF-8",
        "DROP TRIGGER payload_dictionaries_no_update;"
        " UPDATE payload_dictionaries SET data = CAST(x'ff' || data AS TEXT)",
        101,
        "dictionary 2",
    ),
    ("anchor invalid UTF-8", "UPDATE chain_head SET hash = CAST(x'ff00' AS TEXT)", None, "anchor"),
    (
        "erasure record invalid UTF-8",
        f"UPDATE events SET data = CAST(x'ff' || data AS TEXT) WHERE position = {RECORD}",
        ERASED,
        "PayloadsErased",
    ),
    ("frame missing", "DELETE FROM payload_frames", FRAMED_AT, "frame 1 is missing"),
    ("frame replaced", "UPDATE payload_frames SET data = ?", FRAMED_AT, "frame 1"),
    (
        "frame undecompressible",
        "UPDATE payload_frames SET data = x'28b52ffd00'",
        FRAMED_AT,
        "frame",
    ),
    ("frame of another stream", "UPDATE payload_frames SET stream = 'x'", FRAMED_AT, "another"),
    (
        "orphan frame",
        "INSERT INTO payload_frames (stream, codec, level, data) VALUES ('x', 0, 1, x'00')",
        None,
        "no event points at",
    ),
    (
        "malformed reference",
        f"UPDATE events SET data = x'ff' WHERE position = {HEAD}",
        HEAD,
        "malformed",
    ),
    (
        "reference moved",
        f"UPDATE events SET data = (SELECT data FROM events WHERE position = {FRAMED_AT})"
        f" WHERE position = {FRAMED_AT + 1}",
        FRAMED_AT + 1,
        "content",
    ),
    (
        "reference cut short",
        f"UPDATE events SET data = CAST(substr(data, 1, length(data) - 1) || x'01' AS BLOB)"
        f" WHERE position = {HEAD}",
        HEAD,
        "content",
    ),
    ("dropped trigger", "SELECT 1", None, "events_no_delete is missing"),
    (
        "altered trigger",
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events WHEN 0 BEGIN SELECT 1; END;",
        None,
        "altered",
    ),
    (
        "extra trigger",
        "CREATE TRIGGER sneaky AFTER INSERT ON events BEGIN SELECT 1; END;",
        None,
        "unexpected trigger sneaky",
    ),
]


@pytest.mark.parametrize(("name", "sql", "bad", "why"), CASES, ids=[c[0] for c in CASES])
def test_every_corruption_is_reported_at_its_position(
    pristine: Path, tmp_path: Path, name: str, sql: str, bad: int | None, why: str
) -> None:
    path = _copy(pristine, tmp_path / "t.db")
    raw = apsw.Connection(str(path))
    raw.execute(_UNGUARD)
    raw.execute(sql, (_OTHER,) if "?" in sql else ())
    if name not in ("dropped trigger", "altered trigger"):
        # Put the guards back as they were: only the stored data is at fault.
        fresh = apsw.Connection(str(pristine), flags=apsw.SQLITE_OPEN_READONLY)
        for (trigger,) in fresh.execute(
            "SELECT sql FROM sqlite_schema WHERE name IN ('events_no_update', 'events_no_delete')"
        ):
            raw.execute(trigger)
        fresh.close()
    raw.close()
    result = CliRunner().invoke(cli, ["--db", str(path), "verify", "--json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["bad_position"] == bad, report
    assert why in report["reason"], report
    if bad is not None and name != "anchor hash":
        assert report["events"] == bad - 1
    assert set(report) == {
        "ok",
        "events",
        "head",
        "head_hash",
        "bad_position",
        "reason",
        "structure",
    }


def test_verify_text_is_one_line_from_the_real_program(pristine: Path, tmp_path: Path) -> None:
    path = _copy(pristine, tmp_path / "t.db")
    raw = apsw.Connection(str(path))
    raw.execute(_UNGUARD)
    raw.execute("UPDATE events SET data = 'x' WHERE position = 12")
    raw.close()
    done = run_ctl("--db", str(path), "verify")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("position 12: column data holds TEXT")


def _rechain(path: Path, position: int) -> None:
    """What an attacker with write access to the whole file can do: rewrite consistently."""
    db = Database.open(path)
    digests = {
        e.position: hashlib.sha256(e.data).digest() for e in EventLog(db).read() if not e.erased
    }
    db.close()
    raw = apsw.Connection(str(path))
    raw.execute(_UNGUARD)
    forged = msgspec.msgpack.encode(PolicySet(name="forged", values={}))
    raw.execute("UPDATE events SET data = ?, codec = 0 WHERE position = ?", (forged, position))
    digests[position] = hashlib.sha256(forged).digest()
    prev = GENESIS_HASH
    rows = raw.execute(
        "SELECT position, event_id, stream, stream_version, type, schema, recorded_at, digest"
        " FROM events ORDER BY position"
    ).fetchall()
    for *header, kept in rows:
        prev = event_hash_v4(prev, *header, kept or digests[header[0]])
        raw.execute("UPDATE events SET hash = ? WHERE position = ?", (prev, header[0]))
    raw.execute("UPDATE chain_head SET hash = ?", (prev,))
    for name in ("events_no_update", "events_no_delete"):
        raw.execute(expected_triggers()[name])
    raw.close()


def test_an_anchor_kept_elsewhere_catches_a_consistent_rewrite(
    pristine: Path, tmp_path: Path
) -> None:
    path = _copy(pristine, tmp_path / "t.db")
    runner = CliRunner()
    kept = json.loads(runner.invoke(cli, ["--db", str(path), "verify", "--json"]).output)
    assert kept["ok"] and kept["head"] == HEAD, kept
    anchor = f"{kept['head']}:{kept['head_hash']}"
    log = EventLog(Database.open(path))
    log.append([NewEvent("later", PolicySet(name="later", values={}))])
    assert runner.invoke(cli, ["--db", str(path), "verify", "--anchor", anchor]).exit_code == 0
    _rechain(path, 30)
    alone = runner.invoke(cli, ["--db", str(path), "verify"])
    assert alone.exit_code == 0, alone.output  # undetectable alone
    caught = runner.invoke(cli, ["--db", str(path), "verify", "--json", "--anchor", anchor])
    assert caught.exit_code == 1
    report = json.loads(caught.output)
    assert report["bad_position"] == HEAD and "anchor" in report["reason"]
    beyond = runner.invoke(
        cli, ["--db", str(path), "verify", "--json", "--anchor", f"999:{'0' * 64}"]
    )
    assert json.loads(beyond.output)["bad_position"] == HEAD + 2
    for bad_arg in ("12", "x:ab", f"0:{'0' * 64}", "3:abcd"):
        usage = runner.invoke(cli, ["--db", str(path), "verify", "--anchor", bad_arg])
        assert usage.exit_code == 2 and "POSITION:HASH" in usage.output


def _schema_1_database(path: Path, count: int) -> None:
    """A database exactly as skillops schema 1 wrote it (before digests and compression)."""
    raw = apsw.Connection(str(path))
    raw.execute("PRAGMA page_size=16384")
    raw.execute("PRAGMA journal_mode=WAL").fetchall()
    raw.execute(_SCHEMA_1)
    raw.execute(f"PRAGMA application_id={APPLICATION_ID}")
    raw.execute("PRAGMA user_version=1")
    prev = GENESIS_HASH
    for i in range(1, count + 1):
        data = msgspec.msgpack.encode(PolicySet(name=f"old{i}", values={"i": i}))
        header = (i, f"id{i}", "old", i, "PolicySet", 1, "2024-01-01T00:00:00.000000Z")
        digest = event_hash(prev, *header, data)
        raw.execute(
            "INSERT INTO events (position, event_id, stream, stream_version, type, schema,"
            " recorded_at, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*header, data, prev, digest),
        )
        prev = digest
    raw.close()


def test_a_schema_1_database_migrates_in_place_and_stays_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_1_database(path, 5)
    before = apsw.Connection(str(path)).execute("SELECT * FROM events").fetchall()
    db = Database.open(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    after = db.conn.execute(
        "SELECT position, event_id, stream, stream_version, type, schema, recorded_at, data,"
        " prev_hash, hash FROM events"
    ).fetchall()
    assert after == before  # no event rewritten
    log = EventLog(db)
    assert next(e.payload for e in log.read()) == PolicySet(name="old1", values={"i": 1})
    assert verify_chain(db).ok and verify_chain(db).events == 5
    log.append([_line(i) for i in range(3)])
    assert verify_chain(db).ok
    with pytest.raises(Exception, match="before schema 2"):
        log.erase([2], NewEvent("e", PayloadsErased(positions=[2], reason="", author="", scope="")))
    log.erase([7], NewEvent("e", PayloadsErased(positions=[7], reason="", author="", scope="")))
    report = verify_chain(db)
    assert report.ok and report.events == 9
    db.close()
    raw = apsw.Connection(str(path))
    raw.execute(_UNGUARD)
    raw.execute("DELETE FROM events WHERE position > 3")
    raw.close()
    cut = verify_chain(Database.open(path))
    assert not cut.ok and cut.bad_position == 4 and "removed" in (cut.reason or "")


def test_a_newer_schema_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Database.open(path).close()
    raw = apsw.Connection(str(path))
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    done = run_ctl("--db", str(path), "verify")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "newer than this skillops" in done.stderr


def _index_page(path: Path, index: str) -> tuple[int, int]:
    """``(page number, page size)`` of the one page of ``index`` (a small database)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (index,))]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    assert len(pages) == 1
    return pages[0], size


@pytest.mark.parametrize("quick", [False, True])
def test_a_broken_unique_index_on_event_id_fails_verify_with_sqlites_message(
    pristine: Path, tmp_path: Path, quick: bool
) -> None:
    """The chain and every payload are intact; only an entry of the index duplicate
    prevention relies on is damaged (one hex digit of an event id in the index's page)."""
    path = _copy(pristine, tmp_path / "t.db")
    conn = apsw.Connection(str(path))
    (index,) = conn.execute(
        "SELECT name FROM sqlite_schema WHERE tbl_name = 'events' AND type = 'index'"
        " AND sql IS NULL ORDER BY name LIMIT 1"
    ).fetchone()
    (event_id,) = conn.execute("SELECT event_id FROM events WHERE position = 50").fetchone()
    conn.close()
    page, size = _index_page(path, index)
    raw = bytearray(path.read_bytes())
    at = raw.index(event_id.encode(), (page - 1) * size, page * size)
    raw[at] = ord("0") if raw[at] != ord("0") else ord("1")
    path.write_bytes(bytes(raw))
    result = CliRunner().invoke(cli, ["--db", str(path), "verify", *(["--quick"] if quick else [])])
    if quick:  # quick_check reads the pages, not what each index entry points at
        assert result.exit_code in (0, 1)
        return
    assert result.exit_code == 1, result.output
    assert "the database file is damaged (integrity_check):" in result.output
    assert index in result.output and "Traceback" not in result.output
    report = json.loads(CliRunner().invoke(cli, ["--db", str(path), "verify", "--json"]).output)
    assert report["ok"] is False and report["structure"] == "integrity_check"


def test_a_damaged_page_fails_verify_with_sqlites_message(pristine: Path, tmp_path: Path) -> None:
    path = _copy(pristine, tmp_path / "t.db")
    page, size = _index_page(path, "events_by_rare_type")
    raw = bytearray(path.read_bytes())
    raw[(page - 1) * size] = 0x07  # not a b-tree page type
    path.write_bytes(bytes(raw))
    for quick in ([], ["--quick"]):
        result = CliRunner().invoke(cli, ["--db", str(path), "verify", *quick])
        assert result.exit_code == 1, result.output
        assert "the database file is damaged" in result.output
        assert "Traceback" not in result.output
