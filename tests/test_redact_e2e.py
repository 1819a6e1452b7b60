"""Named secrets without a digit and Docker ``auth`` blobs never reach the log (finding F2).

The reviewer's repro, end to end: a Claude Code session whose Bash call printed a compose
file, ``~/.docker/config.json``, a my.cnf and an npmrc is captured by the real ``skillopsd``;
``skillopsctl log --json`` and ``export jsonl`` hold the names, never the values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._daemon import daemon_env
from ._export_helpers import run_once
from .conftest import run_ctl

SECRETS = {
    "POSTGRES_PASSWORD": "wAwaIINYNvDMbZoO",
    "DB_PASSWORD": "correcthorsebatterystaple",
    "password = ": "qUiEtMeAdOw",
    '"auth": "': "ZGVwbG95OkI4ZEUzeEtKbThHQUYw",  # deploy:B8dE3xKJm8GAF0
    "_auth=": "bXl1c2VyOmhvcnNlc3RhcGxl",  # myuser:horsestaple
    "[client]\npassword = ": "letmein",
}
OUTPUT = (
    "services:\n  db:\n    environment:\n"
    f"      POSTGRES_PASSWORD: {SECRETS['POSTGRES_PASSWORD']}\n"
    f"      DB_PASSWORD: {SECRETS['DB_PASSWORD']}\n"
    f"      password = {SECRETS['password = ']}\n"
    '{\n  "auths": {\n    "registry.example.com": {\n'
    f'      "auth": "{SECRETS[chr(34) + "auth" + chr(34) + ": " + chr(34)]}"\n    }}\n  }}\n}}\n'
    f"//registry.npmjs.org/:_auth={SECRETS['_auth=']}\n"
    f"[client]\nuser = root\npassword = {SECRETS['[client]' + chr(10) + 'password = ']}\n"
    # What must stay readable beside them.
    "password = os.environ['DB_PASSWORD']\ntoken = get_token()\nthe password is wrong\n"
)


def _session(home: Path) -> None:
    folder = home / ".claude" / "projects" / "-tmp-proj"
    folder.mkdir(parents=True)
    sid = "33333333-3333-4333-8333-333333333333"
    command = "cat docker-compose.yml ~/.docker/config.json ~/.npmrc ~/.my.cnf"
    lines = [
        {"type": "user", "message": {"role": "user", "content": "check compose"}, "uuid": "u1"},
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "model": "claude-opus-4-7",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": command}}
                ],
            },
            "uuid": "a1",
            "parentUuid": "u1",
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": OUTPUT}],
            },
            "uuid": "u2",
            "parentUuid": "a1",
        },
    ]
    with (folder / f"{sid}.jsonl").open("w") as f:
        for i, line in enumerate(lines):
            line.update(sessionId=sid, timestamp=f"2026-11-03T10:00:0{i}.000Z", cwd="/tmp/proj")
            f.write(json.dumps(line) + "\n")


@pytest.mark.slow
def test_named_secrets_and_docker_auth_never_reach_the_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _session(home)
    run_once(home)
    env = daemon_env(home)
    log = run_ctl("log", "--json", env=env)
    exported = run_ctl("export", "jsonl", env=env)
    assert log.returncode == 0 and exported.returncode == 0, log.stderr + exported.stderr
    for out in (log.stdout, exported.stdout):
        for value in SECRETS.values():
            assert value not in out
    # The captured line holds the output with the names, each value masked.
    assert "POSTGRES_PASSWORD: [REDACTED]" in log.stdout
    assert "DB_PASSWORD: [REDACTED]" in log.stdout
    assert "[REDACTED:basic-auth]" in log.stdout
    assert "password = [REDACTED]" in log.stdout
    for kept in ("os.environ[", "get_token()", "the password is wrong"):
        assert kept in log.stdout
    assert "wAwaIINYNvDMbZoO" in OUTPUT  # the transcript on disk is the user's, untouched
