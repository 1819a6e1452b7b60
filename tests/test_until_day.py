"""``--until DAY`` takes in that day in every command, as ``usage`` (and ccusage) read it.

Found by a reviewer: ``usage --since D --until D`` reported the day, ``sessions`` and
``export`` with the same flags found nothing (their --until was "before midnight of D").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import ctl_command
from .test_verdict_endings import Claude

_SID = "00000000-0000-4000-8000-00000000d0d0"


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "TZ": "UTC"}
    return subprocess.run(
        [*ctl_command(), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_bare_day_in_until_takes_in_that_day_everywhere(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Claude(_SID).prompt("hello").say("hi").write(home)  # started 2026-06-01T10:00 UTC
    assert _ctl(home, "ingest", str(home / ".claude")).returncode == 0

    def listed(*window: str) -> list[str]:
        done = _ctl(home, "sessions", "--json", *window)
        assert done.returncode == 0, done.stderr
        return [s["native_session_id"] for s in json.loads(done.stdout)]

    assert listed("--since", "2026-06-01", "--until", "2026-06-01") == [_SID]
    assert listed("--since", "20260601", "--until", "20260601") == [_SID]
    assert listed("--until", "2026-05-31") == []
    # A time is still a strict bound.
    assert listed("--until", "2026-06-01T10:00:00+00:00") == []
    assert listed("--until", "2026-06-01T10:00:01+00:00") == [_SID]

    done = _ctl(home, "export", "jsonl", "--since", "2026-06-01", "--until", "2026-06-01")
    assert done.returncode == 0, done.stderr
    assert '"kind":"CHAIN"' in done.stdout  # the session's spans
