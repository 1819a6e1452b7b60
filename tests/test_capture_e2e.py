"""End-to-end capture against a real skillopsd: a 50 MB transcript growing and vanishing,
poison inputs thrown at a running daemon, and ``skillopsctl ingest`` racing the backfill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.events import Database, verify_chain
from skillopsd.sources import discover, path_text, resolve_roots

from ._capture_helpers import FIXTURES, captured, claude_project, extract_corpus, file_lines
from ._daemon import DaemonProcess, daemon_env, db_path
from .conftest import console_script, ctl_command, run_ctl
from .test_capture_robust import real_lines

pytestmark = pytest.mark.slow

BIG_BYTES = 50 * 1024 * 1024


@pytest.fixture(scope="session")
def big_transcript(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 50 MB Claude Code transcript of real lines (fresh uuids), built once."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    path.write_bytes(real_lines("big-session", BIG_BYTES))
    return path


def _db_query(home: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
    path = db_path(home)
    if not path.exists():
        return []
    db = Database.open(path)
    try:
        if not db.conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE name='capture_sources'"
        ).fetchall():
            return []
        with db.read() as conn:
            return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        db.close()


def _captured_lines(home: Path) -> int:
    rows = _db_query(home, "SELECT coalesce(sum(lines), 0) FROM capture_sources")
    return rows[0][0] if rows else 0


def test_a_50mb_transcript_growing_while_captured_is_captured_whole(
    big_transcript: Path, tmp_path: Path
) -> None:
    data = big_transcript.read_bytes()
    cut = data.rfind(b"\n", 0, len(data) * 3 // 5) + 1
    target = claude_project(tmp_path) / "big-session.jsonl"
    target.write_bytes(data[:cut])
    daemon = DaemonProcess(tmp_path, "--no-derive")
    try:
        # A writer appends the rest in uneven pieces while the backfill reads the start.
        daemon.wait_for(lambda: _captured_lines(tmp_path) > 0, timeout=60)
        with open(target, "ab") as fh:
            pos = cut
            step = 1
            while pos < len(data):
                fh.write(data[pos : pos + 997 * step])
                fh.flush()
                pos += 997 * step
                step = step * 3 % 4099 + 1
        expected = file_lines(target)
        daemon.wait_for(lambda: _captured_lines(tmp_path) == len(expected), timeout=120)
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]
    db = Database.open(db_path(tmp_path))
    try:
        got = [(e.offset, e.line) for e in captured(db)]
        assert got == expected
        assert verify_chain(db).ok
    finally:
        db.close()
    status = json.loads(run_ctl("status", "--json", env=daemon_env(tmp_path)).stdout)
    claude = status["sources"]["claude"]
    assert (claude["lag_bytes"], claude["lost_bytes"]) == (0, 0)
    assert claude["bytes"] == len(data)


def test_a_50mb_transcript_deleted_mid_read_keeps_what_was_read_and_status_tells_the_rest(
    big_transcript: Path, tmp_path: Path
) -> None:
    target = claude_project(tmp_path) / "big-session.jsonl"
    shutil.copy(big_transcript, target)
    expected = file_lines(target)
    size = target.stat().st_size
    env = daemon_env(tmp_path)
    # The file deleted while the daemon reads it: the open descriptor reads on to its end.
    daemon = DaemonProcess(tmp_path, "--no-derive")
    try:
        daemon.wait_for(lambda: _captured_lines(tmp_path) > 0, timeout=60)
        target.unlink()
        daemon.wait_for(lambda: _captured_lines(tmp_path) == len(expected), timeout=120)
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]
    status = json.loads(run_ctl("status", "--json", env=env).stdout)["sources"]["claude"]
    assert (status["bytes"], status["missing_files"], status["lost_bytes"]) == (size, 1, 0)

    # Stopped mid-read, then deleted before the next start: the rest is lost, and said so.
    home = tmp_path / "second"
    target = claude_project(home) / "big-session.jsonl"
    shutil.copy(big_transcript, target)
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--no-derive")
    try:
        daemon.wait_for(lambda: _captured_lines(home) > 0, timeout=60)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.logs()[-3000:]
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    target.unlink()
    kept = _db_query(home, "SELECT offset FROM capture_sources")[0][0]
    if kept == size:
        pytest.skip("the daemon read all 50 MB before it saw SIGTERM")
    subprocess.run(
        [console_script("skillopsd"), "--once", "--no-derive"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    status = json.loads(run_ctl("status", "--json", env=env).stdout)["sources"]["claude"]
    assert status["bytes"] == kept and status["lost_bytes"] == size - kept
    log = json.loads(run_ctl("log", "--type", "CaptureErrorRecorded", "--json", env=env).stdout)
    (vanished,) = [e["payload"] for e in log]
    assert (vanished["kind"], vanished["offset"], vanished["length"]) == (
        "vanished",
        kept,
        size - kept,
    )
    db = Database.open(db_path(home))
    try:
        assert [(e.offset, e.line) for e in captured(db)] == [
            (o, line) for o, line in expected if o < kept
        ]
    finally:
        db.close()


# --- poison ----------------------------------------------------------------------------

_names = st.binary(min_size=1, max_size=24).map(
    lambda b: b.replace(b"/", b"_").replace(b"\0", b"_") + b".jsonl"
)
_nesting = st.integers(min_value=1, max_value=20_000)
_poison_lines = st.lists(
    st.one_of(
        st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
        _nesting.map(lambda n: b'{"sessionId":"p","x":' + b"[" * n + b"]" * n + b"}"),
        _nesting.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.binary(max_size=40).map(
            lambda b: (
                b'{"sessionId":"p","type":"user","message":{"content":"'
                + b.replace(b'"', b"").replace(b"\\", b"").replace(b"\n", b"")
                + b' password=hunter2hunter2"}}'
            )
        ),
    ),
    max_size=6,
)


class _Poisoner:
    """One running daemon for every example; each example is a new project folder."""

    def __init__(self, home: Path, good: list[bytes]) -> None:
        self.home = home
        self.good = good
        self.n = 0
        self.expected: dict[str, int] = {}
        self.daemon = DaemonProcess(home, "--rescan-interval", "2")

    def lines_of(self, path: str) -> int:
        rows = _db_query(self.home, "SELECT lines FROM capture_sources WHERE path = ?", (path,))
        return rows[0][0] if rows else -1


@pytest.fixture(scope="module")
def poisoner(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("poison")
    good = [line for _, line in file_lines(FIXTURES / "claude_skill.jsonl")]
    p = _Poisoner(home, good)
    yield p
    assert p.daemon.proc.poll() is None, p.daemon.logs()[-3000:]
    # Each FIFO is a problem recorded once, shown by status and in the log.
    env = daemon_env(home)
    status = json.loads(run_ctl("status", "--json", env=env).stdout)
    fifos = [q for q in status["problems"] if q["kind"] == "not_regular"]
    assert len(fifos) == p.n and status["sources"]["claude"]["problems"] == p.n
    log = json.loads(run_ctl("log", "--type", "CaptureErrorRecorded", "--json", env=env).stdout)
    assert len([e for e in log if e["payload"]["kind"] == "not_regular"]) == p.n
    assert p.daemon.stop() == 0, p.daemon.logs()[-3000:]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=st.lists(_names, min_size=1, max_size=3, unique=True), bodies=_poison_lines)
def test_poison_inputs_never_stop_a_running_daemon(
    poisoner: _Poisoner, names: list[bytes], bodies: list[bytes]
) -> None:
    poisoner.n += 1
    project = claude_project(poisoner.home).parent / f"poison-{poisoner.n}"
    project.mkdir()
    raw = os.fsencode(project)
    good_name = f"good-{poisoner.n}.jsonl"
    for i, name in enumerate(names):
        path = os.path.join(raw, b"%d-" % i + name)
        if i == 0:
            os.mkfifo(path)  # a FIFO under a well-formed name: must never be opened
        else:
            with open(path, "wb") as fh:
                fh.write(b"\n".join(bodies) + (b"\n" if i % 2 else b""))
    deep = project / f"deep-{poisoner.n}.jsonl"
    deep.write_bytes(b"\n".join(bodies) + b"\n")
    good = project / good_name
    good.write_bytes(b"\n".join(poisoner.good) + b"\n")
    # Every complete line of every regular file is stored, whatever it holds or is named.
    wanted = {str(good): len(poisoner.good), str(deep): len(file_lines(deep))}
    for i, name in enumerate(names[1:], 1):
        path = Path(os.fsdecode(os.path.join(raw, b"%d-" % i + name)))
        wanted[path_text(path)] = len(file_lines(path))

    def all_captured() -> bool:
        return all(max(0, poisoner.lines_of(p)) == n for p, n in wanted.items())

    poisoner.daemon.wait_for(all_captured, timeout=60)
    assert poisoner.daemon.proc.poll() is None, poisoner.daemon.logs()[-3000:]


# --- two writers -----------------------------------------------------------------------


def test_ingest_while_the_daemon_backfills_both_finish_exactly_once(tmp_path: Path) -> None:
    corpus = extract_corpus(tmp_path / "corpus")
    home = tmp_path / "home"
    home.mkdir()
    for name in (".claude", ".codex"):
        shutil.copytree(corpus / name, home / name)
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--once", "--no-derive")
    ingest = subprocess.Popen(
        [*ctl_command(), "ingest", str(home / ".claude"), str(home / ".codex"), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = ingest.communicate(timeout=300)
    assert daemon.wait(300) == 0, daemon.logs()[-3000:]
    assert ingest.returncode == 0, err[-3000:]
    db = Database.open(db_path(home))
    try:
        lines = captured(db)
        assert verify_chain(db).ok
        counts = Counter((e.source_id, e.generation, e.offset) for e in lines)
        assert max(counts.values()) == 1
        files = db.conn.execute("SELECT path, offset, lines FROM capture_sources").fetchall()
    finally:
        db.close()
    on_disk = [p for p, _store in discover(resolve_roots(env={"HOME": str(home)}))]
    assert sum(len(file_lines(p)) for p in on_disk) == len(lines)
    assert sorted(str(p) for p in on_disk if p.stat().st_size) == sorted(f[0] for f in files)
    assert {f[0]: f[1] for f in files} == {
        str(p): p.stat().st_size for p in on_disk if p.stat().st_size
    }
    assert json.loads(out)["files"] == len(on_disk)
