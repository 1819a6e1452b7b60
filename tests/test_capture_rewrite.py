"""A file rewritten anywhere before its offset is noticed (issue 19, item 5).

The rewrite keeps the first bytes (the fingerprint) and the bytes just before the committed
offset (the tail digest): only the block digests of the committed bytes can tell. It is
recorded as a new generation and read again from the start; what was captured stays.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import apsw

from skillopsd.events import Database
from skillopsd.sources import Capturer, Root, full_pass
from skillopsd.sources._capture import BLOCK_BYTES, CHECK_BYTES

from ._capture_helpers import CLAUDE_SESSION, claude_project
from ._daemon import daemon_env, db_path
from .conftest import console_script


def _line(i: int, word: str = "original") -> bytes:
    body = {
        "type": "user",
        "sessionId": CLAUDE_SESSION,
        "uuid": f"u{i:08d}",
        "message": {"role": "user", "content": f"{word} line {i:06d} " + "x" * 180},
    }
    return json.dumps(body).encode() + b"\n"


def _transcript(path: Path, lines: int) -> list[bytes]:
    rows = [_line(i) for i in range(lines)]
    path.write_bytes(b"".join(rows))
    return rows


def _rewrite_middle(path: Path, rows: list[bytes], at: int) -> None:
    """Line ``at`` says something else, same length: first and last bytes as they were."""
    changed = list(rows)
    changed[at] = _line(at, "REWRITES")
    assert len(changed[at]) == len(rows[at])
    path.write_bytes(b"".join(changed))


def _resets(db: Path) -> list[tuple[str, int]]:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(
            "SELECT stream, count(*) FROM events WHERE type = 'SourceFileReset' GROUP BY stream"
        ).fetchall()
    finally:
        conn.close()


def test_a_small_file_rewritten_in_the_middle_is_a_new_generation_at_once(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = claude_project(home) / f"{CLAUDE_SESSION}.jsonl"
    rows = _transcript(path, 350)  # ~115 KiB: checked whole on every pass
    assert len(b"".join(rows)) <= CHECK_BYTES

    def once() -> None:
        done = subprocess.run(
            [console_script("skillopsd"), "--once", "--no-derive"],
            env=daemon_env(home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    once()
    _rewrite_middle(path, rows, 175)
    with path.open("ab") as fh:
        fh.write(_line(350))
    once()
    assert len(_resets(db_path(home))) == 1
    conn = apsw.Connection(str(db_path(home)), flags=apsw.SQLITE_OPEN_READONLY)
    generation, offset = conn.execute("SELECT generation, offset FROM capture_sources").fetchone()
    lines = conn.execute(
        "SELECT count(*) FROM events WHERE type = 'TranscriptLineCaptured'"
    ).fetchone()[0]
    conn.close()
    assert generation == 2 and offset == path.stat().st_size
    assert lines == 350 + 351  # the first generation kept, the second read whole


def test_a_large_file_rewritten_anywhere_is_noticed_within_a_bounded_number_of_passes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "projects"
    path = root / "-home-u-proj" / f"{CLAUDE_SESSION}.jsonl"
    path.parent.mkdir(parents=True)
    rows = _transcript(path, 8_000)  # ~2.6 MiB: 40 blocks
    size = len(b"".join(rows))
    blocks = -(-size // BLOCK_BYTES)
    db = Database.open(tmp_path / "s.db")
    roots = [Root(agent="claude", path=root)]
    full_pass(Capturer(db), roots)
    capturer = Capturer(db)  # a daemon's: its turns go on from pass to pass
    full_pass(capturer, roots)
    assert _resets(db.path) == []  # unchanged: nothing noticed

    _rewrite_middle(path, rows, 5_000)  # far from both ends
    passes = 0
    while not _resets(db.path):
        passes += 1
        assert passes <= blocks, "the rewrite was never noticed"
        full_pass(capturer, roots)
    # Each pass reads at most CHECK_BYTES of the file back: the last block and one more.
    assert passes <= blocks - 1
    db.close()
