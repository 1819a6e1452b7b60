"""What a team server learns of a machine, read on the server's own bytes.

``--content derived`` (the default) promises no prompt, output, tool arguments, shell
command, file name or error text: a failed call's command (a password pasted as a command,
inline code) and a failed edit's file name must not reach the server in any attribute.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from skillopsd.team.content import NAMING_ATTRIBUTES

from ._daemon import daemon_env, db_path
from ._postgres import Server, start_server
from .conftest import console_script, run_ctl

SESSION = "5e551011-aaaa-4bbb-8ccc-0123456789ab"
PASSWORD = "Winter2026!Pssw0rdQ"
CODENAME = "internal-codename-BLUEFALCON"
INLINE = "ZEPHYRMOON-inline"
FILE = "payroll_layoffs_plan.py"
SECRETS = (PASSWORD, CODENAME, INLINE, FILE, "Pssw0rd", "BLUEFALCON", "payroll")

# Failed calls only: a failed or blocked call is what the deriver keys by its command or
# files (skillops.call.kind), the attribute that carried them to the server before.
CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("Bash", {"command": PASSWORD}, f"bash: {PASSWORD}: command not found"),
    (
        "Bash",
        {
            "command": f"env GIT_SEQUENCE_EDITOR=\"python3 -c 'from pathlib import Path;"
            f' p=Path("$1"); p.write_text("{CODENAME}")\'" git rebase -i HEAD~2'
        },
        "env: x: No such file or directory",
    ),
    ("Bash", {"command": f"python3 -c \"print('{INLINE}'); raise SystemExit(3)\""}, "exit 3"),
    (
        "Edit",
        {"file_path": f"/home/dev/app/{FILE}", "old_string": "a", "new_string": "b"},
        "String to replace not found in file.",
    ),
    ("Bash", {"command": "go test ./..."}, "FAIL\tgithub.com/x/y\t0.01s"),
]


@pytest.fixture(scope="module")
def team_server() -> Iterator[Server]:
    yield from start_server()


def _write_session(home: Path) -> None:
    """A Claude Code transcript: a prompt, the failed ``CALLS``, a final answer."""
    records: list[dict[str, Any]] = []
    parent: list[str | None] = [None]

    def add(record: dict[str, Any]) -> None:
        n = len(records)
        uuid = f"00000000-0000-4000-8000-{n:012d}"
        record.update(
            parentUuid=parent[0],
            isSidechain=False,
            userType="external",
            cwd="/home/dev/app",
            sessionId=SESSION,
            version="2.1.150",
            gitBranch="main",
            uuid=uuid,
            timestamp=f"2026-12-01T10:{n:02d}:00.000Z",
        )
        records.append(record)
        parent[0] = uuid

    usage = {"input_tokens": 10, "output_tokens": 20}
    add({"type": "user", "message": {"role": "user", "content": "log in to the db"}})
    for i, (tool, arguments, output) in enumerate(CALLS):
        call = f"toolu_{i:024d}"
        add(
            {
                "type": "assistant",
                "message": {
                    "model": "claude-sonnet-4-6",
                    "id": f"msg_{i:020d}",
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": call, "name": tool, "input": arguments}],
                    "stop_reason": "tool_use",
                    "usage": usage,
                },
            }
        )
        result = {"type": "tool_result", "tool_use_id": call, "content": output, "is_error": True}
        add({"type": "user", "message": {"role": "user", "content": [result]}})
    add(
        {
            "type": "assistant",
            "message": {
                "model": "claude-sonnet-4-6",
                "id": "msg_final0000000000000",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "done"}],
                "stop_reason": "end_turn",
                "usage": usage,
            },
        }
    )
    project = home / ".claude" / "projects" / "-home-dev-app"
    project.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    (project / f"{SESSION}.jsonl").write_text(text)


def _captured(home: Path) -> Path:
    _write_session(home)
    done = subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return db_path(home)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_derived_sends_no_command_text_nor_file_names(tmp_path: Path, team_server: Server) -> None:
    path = _captured(tmp_path / "home")
    local = path.read_bytes()
    assert PASSWORD.encode() in local  # the control: the local log does hold them
    url = team_server.new_database()
    done = run_ctl("--db", str(path), "sync", "--to", url, "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(url) as conn:
        rows = [
            (str(t), None if p is None else bytes(p))
            for t, p in conn.execute("SELECT type, payload FROM skillops_events")
        ]
        # Every column of every row, as the server holds it.
        dump = "".join(str(r) for r in conn.execute("SELECT * FROM skillops_events"))
    failed = 0
    for type_name, payload in rows:
        if payload is None:
            continue
        for secret in SECRETS:
            assert secret.encode() not in payload, (type_name, secret)
        if type_name == "SpanDerived":
            span = msgspec.msgpack.decode(payload)
            attributes = span["attributes"]
            # An allow-list: every string attribute sent is one known to hold no text.
            assert {k for k, v in attributes.items() if isinstance(v, str)} <= NAMING_ATTRIBUTES
            assert "skillops.call.kind" not in attributes
            failed += span.get("outcome") == "failure"
    assert failed == len(CALLS)  # the failed calls were sent, only without their text
    for secret in SECRETS:
        assert secret not in dump
    # The team's view still judges the session (the verdict needs no command text).
    view = run_ctl("--team", url, "sessions", "--json", timeout=120)
    assert view.returncode == 0, view.stderr
    (session,) = json.loads(view.stdout)
    assert session["outcomes"]["failure"] == len(CALLS)
    assert session["verdict"] is not None
    assert not any(s in view.stdout for s in SECRETS)
