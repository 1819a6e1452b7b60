"""A record no reader can take whole costs that record, never its session (review K13): a
real ``skillopsd --once`` derives the rest, the real ``skillopsctl`` shows the session with its
verdict and says which line it could not read, and a rederive prints no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._daemon import daemon_env
from ._export_helpers import run_once
from .conftest import run_ctl
from .test_verdict_endings import Claude, _sid

pytestmark = pytest.mark.slow

# JSON a parser reads but Python will not turn into an int (more than 4,300 digits), a number
# beyond 64 bits, and one beyond any float.
_ODD = (
    '{"type":"progress","data":{"n":' + "9" * 4301 + "}}",
    '{"type":"progress","data":{"n":' + "9" * 25 + "}}",
    '{"type":"progress","data":{"n":1e400}}',
)


@pytest.mark.parametrize("odd", _ODD, ids=["4301-digits", "25-digits", "1e400"])
def test_one_odd_record_leaves_its_session_shown_and_judged(tmp_path: Path, odd: str) -> None:
    home = tmp_path / "home"
    sid = _sid(4301)
    (
        Claude(sid)
        .prompt("make the test pass")
        .call("t1", "Bash", command="go test ./...")
        .result("t1", "Exit code 1\n--- FAIL: TestX", error=True)
        .say("TestX still fails; I could not fix it.")
        .write(home)
    )
    transcript = home / ".claude" / "projects" / "-w-repo" / f"{sid}.jsonl"
    lines = transcript.read_text().splitlines()
    transcript.write_text("\n".join([*lines[:2], odd, *lines[2:]]) + "\n")
    done = run_once(home)
    assert "Traceback" not in done.stderr
    env = daemon_env(home)
    listed = run_ctl("sessions", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    assert [s["native_session_id"] for s in sessions] == [sid]
    assert sessions[0]["verdict"] == "failure"
    again = run_ctl("rederive", "--session", sid, env=env)
    assert "Traceback" not in again.stderr + again.stdout
    assert again.returncode == 0, again.stderr
