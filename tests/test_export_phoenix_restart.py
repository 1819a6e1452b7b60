"""Nothing acknowledged is lost across a real Phoenix restart (issue 21: done when).

The pinned Phoenix runs on a working directory of its own (its SQLite storage). An
``export otlp --verify phoenix`` of real corpus sessions is under way when Phoenix is killed
(SIGKILL), brought back on the same port and storage, then stopped cleanly (SIGTERM) and
brought back again. While Phoenix is down its storage is read directly: every session the
checkpoint counts as exported is there whole. After the export finishes on its own (the
default retry budget outlasting both outages), every session's spans are in Phoenix exactly
once, read back through its REST API, and the checkpoint holds every session.
"""

from __future__ import annotations

import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skillopsd.events import Database
from skillopsd.export import DEFAULT_RETRY_BUDGET, root_span_id, target_key, traces_url
from skillopsd.export._checkpoint import exported_positions, has_tables

from ._capture_helpers import CORPUS
from ._daemon import daemon_env, db_path
from ._export_helpers import derived, run_once
from ._phoenix import Phoenix, start_phoenix
from .conftest import console_script

pytestmark = [pytest.mark.phoenix, pytest.mark.slow]

PROJECT = "restart"
# The corpus' smallest transcripts: enough requests (64 KiB each) to kill Phoenix between
# them twice, few enough spans for a loaded 2-core machine's Phoenix to ingest in a minute.
SESSIONS = 25


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[list[Phoenix]]:
    """The running Phoenix (the list's last; a restart appends), stopped at the end."""
    (tmp_path / "phoenix").mkdir()
    running = [start_phoenix(tmp_path / "phoenix")]
    yield running
    running[-1].stop()


def _home(dest: Path) -> Path:
    with tarfile.open(CORPUS) as tar:
        files = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.size)
        tar.extractall(dest, members=files[:SESSIONS], filter="data")
    return dest


def _checkpoint(home: Path, target: str) -> dict[str, int]:
    db = Database.open(db_path(home))
    try:
        with db.read() as conn:
            return exported_positions(conn, target) if has_tables(conn) else {}
    finally:
        db.close()


def _wait_for(
    check: Callable[[], bool], what: str, export: subprocess.Popen[bytes], err: Path, limit: float
) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert export.poll() is None, f"the export ended before {what}: {err.read_text()}"
        assert time.monotonic() < deadline, f"no {what} within {limit:.0f}s"
        time.sleep(0.2)


def test_an_export_across_a_phoenix_kill_and_a_clean_stop_loses_and_duplicates_nothing(
    phoenix: list[Phoenix], tmp_path: Path
) -> None:
    home = _home(tmp_path / "home")
    run_once(home)
    sessions = derived(home)
    assert len(sessions) >= SESSIONS - 5  # a file may hold no session
    expected = {
        sid: {root_span_id(sid), *(sp.span_id for sp in spans)}
        for sid, (_s, spans) in sessions.items()
    }
    url = phoenix[0].url
    target = target_key(traces_url(url), PROJECT, "skillops")
    err = tmp_path / "export.err"
    started = time.monotonic()
    with err.open("wb") as stderr:
        export = subprocess.Popen(
            [console_script("skillopsctl"), "export", "otlp", "--endpoint", url,
             "--verify", "phoenix", "--project", PROJECT, "--settle-seconds", "0",
             "--batch-bytes", "65536"],
            env=daemon_env(home), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    downtimes = []
    try:
        checkpointed = 0
        for stop in ("kill", "clean stop"):
            # Mid-export: the checkpoint has moved past what it held, and is still moving.
            _wait_for(
                lambda n=checkpointed: len(_checkpoint(home, target)) > n,
                f"a session checkpointed before the {stop}",
                export,
                err,
                300,
            )
            running = phoenix[-1]
            down = time.monotonic()
            if stop == "kill":
                running.kill()
            else:
                running.stop()
            # Phoenix is down: what the checkpoint says exported is in its storage, whole.
            exported = _checkpoint(home, target)
            stored = set(running.stored_span_ids())
            for sid in exported:
                assert expected[sid] <= stored, f"checkpointed after the {stop} but not stored"
            checkpointed = len(exported)
            assert checkpointed < len(sessions), f"the export was over before the {stop}"
            phoenix.append(running.restarted())
            downtimes.append(time.monotonic() - down)
        code = export.wait(timeout=600)
    finally:
        if export.poll() is None:
            export.kill()
            export.wait()
    message = err.read_text()
    assert code == 0, message
    assert "Traceback" not in message
    assert f"exported {len(sessions)} sessions" in message, message
    # The default retry budget covered each outage (no option was given to stretch it).
    assert all(d < DEFAULT_RETRY_BUDGET for d in downtimes), downtimes
    assert time.monotonic() - started > sum(downtimes)

    # Every session's spans in Phoenix exactly once, through its API.
    got = phoenix[-1].spans(PROJECT)
    counts = Counter(s["context"]["span_id"] for s in got)
    assert [sid for sid, n in counts.items() if n > 1] == []
    by_trace: dict[str, set[str]] = {}
    for s in got:
        by_trace.setdefault(s["context"]["trace_id"], set()).add(s["context"]["span_id"])
    for sid, (_session, spans) in sessions.items():
        trace = spans[0].trace_id if spans else None
        assert trace is not None and by_trace.get(trace) == expected[sid], sid
    assert len(got) == sum(len(ids) for ids in expected.values())
    assert set(_checkpoint(home, target)) == set(sessions)
