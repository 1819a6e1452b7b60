"""Live OTLP export from a real skillopsd: off by default, settles, survives an outage."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from skillopsd.events import Database
from skillopsd.export import root_span_id

from ._daemon import DaemonProcess, daemon_env, db_path, wait_for
from ._export_helpers import CODEX_FAILURE, ONE_BLOCK, derived, home_with, run_once
from ._otlp_receiver import Receiver
from .conftest import console_script, run_ctl

pytestmark = pytest.mark.slow


def _expected(home: Path) -> set[str]:
    out = set()
    for sid, (_session, spans) in derived(home).items():
        out.add(root_span_id(sid))
        out.update(s.span_id for s in spans)
    return out


def _exports(home: Path) -> list[dict[str, object]]:
    if not db_path(home).exists():
        return []  # the daemon has not created it yet: status would refuse (review K2)
    done = run_ctl("status", "--json", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    exports: list[dict[str, object]] = json.loads(done.stdout)["exports"]
    return exports


def test_off_by_default_and_the_otel_variable_turns_it_on(tmp_path: Path) -> None:
    home = home_with(tmp_path / "home", (CODEX_FAILURE,))
    run_once(home)
    db = Database.open(db_path(home))
    with db.read() as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
    db.close()
    assert not {"export_targets", "export_checkpoints"} & tables
    assert _exports(home) == []

    receiver = Receiver()
    try:
        # Old sessions are settled at once: --once exports them before it exits, even with
        # the default settle period.
        env = daemon_env(home, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.url}/v1/traces")
        done = subprocess.run(
            [console_script("skillopsd"), "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        counts = receiver.span_counts()
        assert set(counts) == _expected(home) and set(counts.values()) == {1}
        [export] = _exports(home)
        assert export["live"] is True and export["behind"] == 0
    finally:
        receiver.down()


def test_live_export_through_an_outage_a_crash_and_a_session_that_grows(tmp_path: Path) -> None:
    home = home_with(tmp_path / "home", (CODEX_FAILURE, ONE_BLOCK))
    growing = next(home.rglob(f"{ONE_BLOCK}.jsonl"))
    lines = growing.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    growing.write_bytes(b"".join(lines[:half]))

    receiver = Receiver()
    receiver.down()  # the receiver is out when the daemon starts
    options = ("--otlp-endpoint", receiver.url, "--otlp-settle", "0", "--derive-interval", "0.1")
    daemon = DaemonProcess(home, *options, env=daemon_env(home))
    try:
        daemon.wait_for(lambda: any(e["last_error"] for e in _exports(home)), timeout=60)
        [export] = _exports(home)
        assert export["behind"] == 2 and "cannot reach" in str(export["last_error"])

        receiver.up()
        daemon.wait_for(lambda: set(receiver.span_counts()) == _expected(home), timeout=60)
        first = receiver.span_counts()
        assert set(first.values()) == {1}  # every span arrived, once
        wait_for(lambda: _exports(home)[0]["behind"] == 0, timeout=20)

        # A crash after the acknowledgements: the restarted daemon sends nothing again.
        daemon.kill()
        daemon = DaemonProcess(home, *options, env=daemon_env(home))
        daemon.wait_for(lambda: "otlp export on" in daemon.logs(), timeout=30)
        time.sleep(1.0)
        assert receiver.span_counts() == first

        # The session grows: it is derived again, and exported again with its new spans.
        before = _expected(home)
        with growing.open("ab") as fh:
            fh.write(b"".join(lines[half:]))
        daemon.wait_for(lambda: _expected(home) - before != set(), timeout=60)
        daemon.wait_for(lambda: set(receiver.span_counts()) >= _expected(home), timeout=60)
        counts = receiver.span_counts()
        sessions = derived(home)
        codex = next(s for s, (v, _) in sessions.items() if v.native_session_id == CODEX_FAILURE)
        untouched = {s.span_id for s in sessions[codex][1]}
        assert all(counts[i] == 1 for i in untouched)  # the unchanged session is not re-sent
        wait_for(lambda: _exports(home)[0]["behind"] == 0, timeout=20)
    finally:
        assert daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
        receiver.down()
