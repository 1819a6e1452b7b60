"""A reader that stops early (``skillopsctl … | head``) ends the command quietly: status 141
as for a program SIGPIPE stops, nothing on stderr, nothing stored harmed."""

from __future__ import annotations

import json
import subprocess

import pytest

from ._daemon import daemon_env
from .conftest import console_script

pytestmark = pytest.mark.slow

SID = "77777777-7777-4777-8777-777777777777"

COMMANDS = [
    ("log",),
    ("log", "--json"),
    ("sessions",),
    ("sessions", "--json"),
    ("session", "show", SID),
    ("session", "show", SID, "--json"),
    ("export", "jsonl"),
    ("export", "otlp", "--out", "-"),
    ("annotations",),
    ("annotations", "--json"),
    ("skills",),
    ("usage", "daily"),
    ("usage", "session", "--json"),
    ("status",),
    ("verify",),
    ("--help",),
    ("session", "--help"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("pipe-home")
    folder = home / ".claude" / "projects" / "-tmp-pipe"
    folder.mkdir(parents=True)
    lines = []
    for i in range(40):  # more than one screen of every listing
        lines.append({"type": "user", "message": {"role": "user", "content": f"prompt {i}"}})
        lines.append(
            {
                "type": "assistant",
                "message": {
                    "role": "assistant",
                    "model": "claude-opus-4-7",
                    "content": [{"type": "text", "text": f"answer {i}"}],
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                },
            }
        )
    with open(folder / f"{SID}.jsonl", "w") as f:
        for i, d in enumerate(lines):
            d.update(
                sessionId=SID,
                uuid=f"u{i}",
                parentUuid=f"u{i - 1}" if i else None,
                timestamp=f"2026-11-05T11:{i // 60:02d}:{i % 60:02d}.000Z",
                cwd="/tmp/pipe",
            )
            f.write(json.dumps(d) + "\n")
    env = daemon_env(home)
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)
    subprocess.run(
        [console_script("skillopsctl"), "annotate", SID, "--label", "good"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env


@pytest.fixture(scope="module")
def stored(env: dict[str, str]) -> bytes:
    """The log as it stands: no case may change it."""
    return _stored(env)


def _stored(env: dict[str, str]) -> bytes:
    return subprocess.run(
        [console_script("skillopsctl"), "log", "--json"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_stdout_ends_quietly(
    env: dict[str, str], stored: bytes, args: tuple[str, ...]
) -> None:
    proc = subprocess.Popen(
        [console_script("skillopsctl"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    code = proc.wait(timeout=60)
    assert err == b"", err.decode(errors="replace")
    assert code == 141, code
    assert _stored(env) == stored


def test_log_json_into_head(env: dict[str, str]) -> None:
    """The reviewer's case, through a shell pipe: head takes one line and leaves."""
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"'{console_script('skillopsctl')}' log --json | head -1;"
            ' echo "status=${PIPESTATUS[0]}" >&2',
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.stdout == b"[\n"
    assert result.stderr.decode() in ("status=141\n", "status=0\n"), result.stderr
