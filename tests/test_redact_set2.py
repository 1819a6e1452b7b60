"""Redaction on a second labelled set, written by someone who did not write the rules
(issue 19, item 7): real-shaped Claude Code lines and Codex ``function_call`` arguments
(JSON inside a JSON string, quotes escaped twice), each run through the path capture takes
(one screen of the block, then the exact rules on flagged lines). The set lives in
tests/data/redaction_set2/ (its README says how it was made); bench/redact.py prints it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from skillopsd._redact import redact, screen

SET2 = Path(__file__).resolve().parent / "data" / "redaction_set2"


def captured(line: bytes) -> bytes:
    """``line`` as capture stores it: screened in its block, redacted if flagged."""
    block = line + b"\n"
    if not screen(block, len(block)):
        return line
    return redact(line, was_json=True, screened=True)[0]


def _secrets() -> list[dict[str, object]]:
    return json.loads((SET2 / "secrets.json").read_text())


def _nonsecrets() -> list[dict[str, object]]:
    return json.loads((SET2 / "nonsecrets.json").read_text())


def test_recall_is_at_least_98_percent_in_claude_lines_and_codex_arguments_alike() -> None:
    cases: Counter[str] = Counter()
    found: Counter[str] = Counter()
    missed = []
    for case in _secrets():
        line = str(case["line"]).encode()
        out = captured(line)
        msgspec.json.decode(out)  # still one JSON value
        agent = str(case["agent"])
        cases[agent] += 1
        left = [s for s in case["secrets"] if str(s).encode() in out]  # type: ignore[attr-defined]
        if left:
            missed.append((case["id"], case["family"], agent, case["where"]))
        else:
            found[agent] += 1
    assert set(cases) == {"claude", "codex"} and min(cases.values()) >= 70
    for agent in cases:
        assert found[agent] / cases[agent] >= 0.98, (agent, missed)
    codex_args = [c for c in _secrets() if c["where"] == "function_call-arguments"]
    assert len(codex_args) >= 30
    assert all(
        not any(str(s).encode() in captured(str(c["line"]).encode()) for s in c["secrets"])
        for c in codex_args
    )  # type: ignore[attr-defined]


def test_no_real_shaped_non_secret_line_is_changed() -> None:
    changed = [
        c["id"]
        for c in _nonsecrets()
        if captured(str(c["line"]).encode()) != str(c["line"]).encode()
    ]
    assert len(_nonsecrets()) >= 150 and changed == []


def _command(text: str) -> bytes:
    return msgspec.json.encode(
        {
            "type": "assistant",
            "message": {
                "content": [{"type": "tool_use", "name": "Bash", "input": {"command": text}}]
            },
        }
    )


def _codex_arguments(text: str) -> bytes:
    arguments = msgspec.json.encode({"cmd": text}).decode()
    return msgspec.json.encode(
        {"type": "response_item", "payload": {"type": "function_call", "arguments": arguments}}
    )


# The issue's misses, each a class: every one in a Claude command and in Codex arguments.
MISSES = [
    (
        "curl https://api.telegram.org/bot5665742111:AAnssQNMkdkOsDbzZ3qAAEW8-HZqJLGgmnv/getMe",
        "AAnssQNMkdkOsDbzZ3qAAEW8-HZqJLGgmnv",
    ),
    ('curl -d \'{"password":"zt6wKWMbeMVx"}\' https://x.example/login', "zt6wKWMbeMVx"),
    ('python -c \'print({"api_key": "fx4mAGkaCV4YLvcXDZi"})\'', "fx4mAGkaCV4YLvcXDZi"),
    ("cat > s.py <<'EOF'\ndb_password = \"2OBUhtc=5MCEVDq6\"\nEOF", "2OBUhtc=5MCEVDq6"),
    ("export CLIENT=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", "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"),
    ("mysql -u root -prMrqBO3kjjY2 -h 127.0.0.1 shop", "rMrqBO3kjjY2"),
    ("mysqldump -uroot -p'6Lji_szN5qAj6' shop > shop.sql", "6Lji_szN5qAj6"),
    ("sshpass -p 'NFpGAyti2' ssh root@203.0.113.5", "NFpGAyti2"),
    ('sshpass -p "x7sOR.B0z-" scp a.tgz pi@host:', "x7sOR.B0z-"),
    (
        "curl --user 'api:key-329e4f0951d29aa97321252c0d79caa2' https://api.mailgun.net/v3",
        "key-329e4f0951d29aa97321252c0d79caa2",
    ),
    (
        'curl -H "Authorization: Token 687c8aa687b3f26be1fbb81fc0ccae3e8c6dbb33" http://h/api',
        "687c8aa687b3f26be1fbb81fc0ccae3e8c6dbb33",
    ),
]


@pytest.mark.parametrize(("text", "secret"), MISSES, ids=[m[1][:12] for m in MISSES])
def test_the_issue_misses_are_masked_in_claude_and_codex_lines(text: str, secret: str) -> None:
    for line in (_command(text), _codex_arguments(text)):
        out = captured(line)
        msgspec.json.decode(out)
        assert secret.encode() not in out, out


KEPT = [
    "cat >> mise.toml <<'EOF'\n[tools]\n1password = \"latest\"\nEOF",
    "sed -i 's/api_key=.*/api_key=REDACTED/g' logs/app.log",
    "docker login --password-stdin registry.example.com < token.txt",
    "mysql -u root -p -h 127.0.0.1 shop",
    'curl -u "$USER:$TOKEN" https://example.com',
    "printf 'token: %s' \"$GITHUB_TOKEN\"",
    "git log --auth-token-file ~/.t",
]


@pytest.mark.parametrize("text", KEPT)
def test_what_only_looks_like_a_secret_stays_byte_for_byte(text: str) -> None:
    for line in (_command(text), _codex_arguments(text)):
        assert captured(line) == line


@settings(max_examples=100, deadline=None)
@given(
    password=st.text(alphabet="abcdefghijkmnopqrstuvwxyz0123456789xX*.!_", min_size=1, max_size=24)
)
@example(password="222xxx")  # issue 16, item 8: a property test found it once
@example(password="xxx2")
def test_a_url_password_of_any_entropy_is_masked(password: str) -> None:
    from hypothesis import assume

    assume(not (set(password) <= set("xX") or set(password) <= {"*"} or set(password) <= {"."}))
    assume(not password.startswith(("*", ".")) and "**" not in password and "./" not in password)
    for line in (
        _command(f"redis-cli -u redis://:{password}@cache:6379 PING"),
        _codex_arguments(f"redis-cli -u redis://:{password}@cache:6379 PING"),
    ):
        out = captured(line)
        assert f":{password}@".encode() not in out, out
