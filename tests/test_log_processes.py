"""The log under real processes: concurrent writers, and a writer killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from skillopsd.events import Database, EventLog, verify_chain

WRITER = [sys.executable, str(Path(__file__).with_name("_writer.py"))]


def test_two_processes_append_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Database.open(path).close()
    procs = [
        subprocess.Popen(
            [*WRITER, "loop", str(path), name, "3", str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, batch in (("a", 7), ("b", 13))
    ]
    written = {}
    for name, proc in zip("ab", procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert err == ""
        written[name] = int(out)
    assert all(n > 0 for n in written.values())
    db = Database.open(path)
    log = EventLog(db)
    rows = list(log.read())
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    for name, n in written.items():
        ids = [r.event_id for r in rows if r.stream == f"writer:{name}"]
        assert ids == [f"{name}-{i}" for i in range(n)]
    assert len(rows) == sum(written.values())
    assert verify_chain(db).ok


def test_sigkill_mid_batch_leaves_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db = Database.open(path)
    EventLog(db).append([])
    db.close()
    wal = Path(f"{path}-wal")
    count = 40_000
    proc = subprocess.Popen(
        [*WRITER, "big", str(path), "big", str(count)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "start"
    # The batch spills pages into the WAL while its transaction is still open; kill then.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 8 * 1024 * 1024:
            break
        time.sleep(0.005)
    else:
        raise AssertionError("the writer never spilled into the WAL")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    db = Database.open(path)
    log = EventLog(db)
    head = log.head()
    assert head == 0, f"a killed batch left {head} events"
    assert verify_chain(db).ok
    # The log still takes writes after the crash.
    from skillopsd.events import NewEvent
    from skillopsd.events.types import PolicySet

    log.append([NewEvent("after", PolicySet(name="x", values={}))])
    assert log.head() == 1 and verify_chain(db).ok


def test_batch_committed_before_kill_is_wholly_present(tmp_path: Path) -> None:
    path = tmp_path / "k2.db"
    Database.open(path).close()
    proc = subprocess.run(
        [*WRITER, "big", str(path), "big", "3000"], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.split() == ["start", "done"]
    db = Database.open(path)
    assert EventLog(db).head() == 3000
    assert verify_chain(db).ok
