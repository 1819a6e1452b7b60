"""Capture in process: tailing, file identity, malformed and oversized lines, redaction."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import msgspec
import pytest

from skillopsd.events import Database, EventLog, verify_chain
from skillopsd.sources import STORES, Capturer, capture_all, discover, resolve_roots

from ._capture_helpers import (
    CLAUDE_SESSION,
    FIXTURES,
    capture_errors,
    captured,
    claude_project,
    codex_path,
    file_lines,
    layout_claude_pair,
    paths_by_source,
)

CLAUDE = STORES["claude"]
CODEX = STORES["codex"]


def _roots(home: Path):
    return resolve_roots(env={"HOME": str(home)})


def _scan(db: Database, home: Path, **kwargs) -> None:
    capture_all(Capturer(db, **kwargs), list(discover(_roots(home))))


def test_chunked_writes_with_partial_lines_are_captured_once_in_order(
    db: Database, tmp_path: Path
) -> None:
    source = FIXTURES / "claude_skill.jsonl"
    data = source.read_bytes()
    target = claude_project(tmp_path) / "4438ec3f-cef8-537e-8237-ef36ba665ed7.jsonl"
    rnd = random.Random(3)
    capturer = Capturer(db)
    pos = 0
    with open(target, "wb") as fh:
        while pos < len(data):
            n = rnd.choice([1, 7, 100, 1000, 5000])
            fh.write(data[pos : pos + n])
            fh.flush()
            pos += n
            capturer.capture_file(target, CLAUDE)
            # Never a partial line: everything captured is a complete line of the file.
            got = captured(db)
            assert all(not e.line.endswith(b"\n") for e in got)
    got = captured(db)
    assert [(e.offset, e.line) for e in got] == file_lines(source)
    assert {e.session for e in got} == {"4438ec3f-cef8-537e-8237-ef36ba665ed7"}
    assert all(e.json_ok for e in got)
    assert verify_chain(db).ok


def test_partial_last_line_waits_for_its_newline(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(b'{"sessionId":"s","a":1}\n{"b":')
    capturer = Capturer(db)
    capturer.capture_file(target, CLAUDE)
    assert [e.line for e in captured(db)] == [b'{"sessionId":"s","a":1}']
    with open(target, "ab") as fh:
        fh.write(b"2}\n")
    capturer.capture_file(target, CLAUDE)
    assert [e.line for e in captured(db)] == [b'{"sessionId":"s","a":1}', b'{"b":2}']


def test_subagent_files_belong_to_their_parent_session(db: Database, tmp_path: Path) -> None:
    parent, child = layout_claude_pair(tmp_path)
    _scan(db, tmp_path)
    got = captured(db)
    assert {e.session for e in got} == {CLAUDE_SESSION}
    assert {paths_by_source(db)[e.source_id] for e in got} == {str(parent), str(child)}
    assert len(got) == len(file_lines(parent)) + len(file_lines(child))


def test_truncated_file_is_a_new_generation(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(b'{"sessionId":"s","n":1}\n{"n":2}\n{"n":3}\n')
    capturer = Capturer(db)
    capturer.capture_file(target, CLAUDE)
    with open(target, "r+b") as fh:
        fh.truncate(0)
        fh.write(b'{"sessionId":"s","n":9}\n')
    capturer.capture_file(target, CLAUDE)
    got = captured(db)
    assert [(e.generation, e.line) for e in got][-1] == (2, b'{"sessionId":"s","n":9}')
    assert len(got) == 4
    log = EventLog(db)
    (reset,) = [e.payload for e in log.read(types=["SourceFileReset"])]
    assert reset.reason == "truncated" and reset.previous_offset == 40
    assert verify_chain(db).ok


def test_file_rewritten_in_place_is_replaced(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(b'{"sessionId":"s","n":1}\n')
    capturer = Capturer(db)
    capturer.capture_file(target, CLAUDE)
    replacement = target.with_suffix(".new")
    replacement.write_bytes(b'{"sessionId":"s","n":2}\n{"sessionId":"s","n":3}\n')
    os.replace(replacement, target)  # a new inode at the same path
    capturer.capture_file(target, CLAUDE)
    (reset,) = [e.payload for e in EventLog(db).read(types=["SourceFileReset"])]
    assert reset.reason == "replaced"
    assert [e.line for e in captured(db)][1:] == [
        b'{"sessionId":"s","n":2}',
        b'{"sessionId":"s","n":3}',
    ]


def test_moved_file_is_not_read_again(db: Database, tmp_path: Path) -> None:
    target = codex_path(tmp_path)
    shutil.copy(FIXTURES / "codex_skill.jsonl", target)
    _scan(db, tmp_path)
    before = len(captured(db))
    archived = tmp_path / ".codex" / "archived_sessions" / target.name
    archived.parent.mkdir(parents=True)
    os.rename(target, archived)
    _scan(db, tmp_path)
    assert len(captured(db)) == before
    (moved,) = [e.payload for e in EventLog(db).read(types=["SourceFileMoved"])]
    assert (moved.old_path, moved.new_path) == (str(target), str(archived))
    with open(archived, "ab") as fh:
        fh.write(b'{"type":"event_msg","payload":{"type":"task_complete"}}\n')
    _scan(db, tmp_path)
    got = captured(db)
    assert len(got) == before + 1 and paths_by_source(db)[got[-1].source_id] == str(archived)
    assert {e.session for e in got} == {"019e85b4-1c72-7261-87c9-0057f1788e50"}


def test_deleted_file_leaves_everything_captured(db: Database, tmp_path: Path) -> None:
    parent, child = layout_claude_pair(tmp_path)
    _scan(db, tmp_path)
    before = [(e.source_id, e.offset, e.line) for e in captured(db)]
    parent.unlink()
    shutil.rmtree(child.parent.parent)
    _scan(db, tmp_path)
    assert [(e.source_id, e.offset, e.line) for e in captured(db)] == before
    assert verify_chain(db).ok


def test_malformed_lines_are_kept_and_flagged(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    lines = [
        b'{"sessionId":"s","n":1}',
        b'{"n":2}{"n":3}',  # two records run together
        b"not json at all \xff\xfe",
        b"",
        b'{"n":4}',
    ]
    target.write_bytes(b"\n".join(lines) + b"\n")
    _scan(db, tmp_path)
    got = captured(db)
    assert [e.line for e in got] == lines
    assert [e.json_ok for e in got] == [True, False, False, False, True]


def test_oversized_line_is_an_error_event_and_capture_goes_on(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    big = b'{"sessionId":"s","blob":"' + b"x" * 5000 + b'"}'
    target.write_bytes(b'{"sessionId":"s","n":1}\n' + big + b"\n" + b'{"n":2}\n')
    _scan(db, tmp_path, max_line_bytes=1024)
    assert [e.line for e in captured(db)] == [b'{"sessionId":"s","n":1}', b'{"n":2}']
    (error,) = capture_errors(db)
    assert (error.offset, error.length, error.kind) == (24, len(big), "oversized")
    assert error.path == str(target)


def test_oversized_line_spanning_reads_and_writes(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(b'{"sessionId":"s"}\n' + b"y" * 3000)
    capturer = Capturer(db, max_line_bytes=1024)
    capturer.capture_file(target, CLAUDE)
    assert capture_errors(db) == []  # its newline has not arrived
    with open(target, "ab") as fh:
        fh.write(b"y" * 3000 + b'\n{"n":2}\n')
    capturer.capture_file(target, CLAUDE)
    (error,) = capture_errors(db)
    assert (error.offset, error.length) == (18, 6000)
    assert [e.line for e in captured(db)][-1] == b'{"n":2}'


SECRETS = {
    "anthropic": "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 3,
    "openai": "sk-proj-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3" * 2,
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "github-pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "google": "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop",
    "password": "hunter2-correct-horse",
    "api_key": "k3y-0f-my-s3rv1ce",
}


def _secret_lines(source: Path) -> list[bytes]:
    """Real fixture records with secrets planted in their text, the way a tool result would."""
    decoder = msgspec.json.Decoder()
    out = []
    for raw in source.read_bytes().split(b"\n")[:-1][:6]:
        record = decoder.decode(raw)
        record["leak"] = (
            f"export ANTHROPIC_API_KEY={SECRETS['anthropic']}\n"
            f"OPENAI={SECRETS['openai']} gh={SECRETS['github']} pat={SECRETS['github-pat']}\n"
            f"aws_access_key_id = {SECRETS['aws']}; slack {SECRETS['slack']}\n"
            f"google {SECRETS['google']}\nAuthorization: Bearer {SECRETS['bearer']}\n"
            f"password={SECRETS['password']}\n"
            f'{{"api_key": "{SECRETS["api_key"]}"}}\n'
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq\n+/x=\n"
            "-----END RSA PRIVATE KEY-----"
        )
        out.append(msgspec.json.encode(record))
    return out


def test_secrets_are_masked_before_storage(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    lines = _secret_lines(FIXTURES / "claude_skill.jsonl")
    target.write_bytes(b"\n".join(lines) + b"\n")
    _scan(db, tmp_path)
    got = captured(db)
    assert len(got) == len(lines)
    for event in got:
        assert event.json_ok and event.redactions >= 10
        record = msgspec.json.decode(event.line)  # still valid JSON
        assert "[REDACTED" in record["leak"]
        assert "MIIEpAIBAAKCAQEA7bq" not in record["leak"]
    db.conn.execute("PRAGMA wal_checkpoint(FULL)")
    raw = db.path.read_bytes() + Path(f"{db.path}-wal").read_bytes()
    for name, secret in SECRETS.items():
        assert secret.encode() not in raw, name
    assert b"MIIEpAIBAAKCAQEA7bq" not in raw


def test_no_redact_keeps_lines_verbatim(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    lines = _secret_lines(FIXTURES / "claude_skill.jsonl")
    target.write_bytes(b"\n".join(lines) + b"\n")
    _scan(db, tmp_path, redact_secrets=False)
    assert [e.line for e in captured(db)] == lines


def test_ordinary_code_is_not_redacted(db: Database, tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    line = (
        b'{"sessionId":"s","text":"s.token = token\\nBasicAuth{Password: password}'
        b'\\ninput_tokens: 1234\\nmax_output_tokens=4096"}'
    )
    target.write_bytes(line + b"\n")
    _scan(db, tmp_path)
    (event,) = captured(db)
    assert event.line == line and event.redactions == 0


def test_two_capturers_on_one_file_never_duplicate(tmp_path: Path) -> None:
    target = claude_project(tmp_path) / "s.jsonl"
    source_lines = file_lines(FIXTURES / "claude_injected_skill.jsonl")
    path = tmp_path / "db.sqlite"
    a, b = Database.open(path), Database.open(path)
    ca, cb = Capturer(a), Capturer(b)
    with open(target, "wb") as fh:
        for i, (_offset, line) in enumerate(source_lines):
            fh.write(line + b"\n")
            fh.flush()
            (ca if i % 2 else cb).capture_file(target, CLAUDE)
            if i % 3 == 0:
                ca.capture_file(target, CLAUDE)
    got = captured(a)
    assert [(e.offset, e.line) for e in got] == source_lines
    assert verify_chain(a).ok


@pytest.mark.parametrize("agent", ["claude", "codex", "copilot", "gemini"])
def test_agent_env_overrides_and_root_overrides(tmp_path: Path, agent: str) -> None:
    env = {
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": "/cfg/claude",
        "CODEX_HOME": "/cfg/codex",
        "COPILOT_HOME": "/cfg/copilot",
        "GEMINI_CLI_HOME": "/cfg/gemini-home",
    }
    roots = {(r.agent, str(r.path)) for r in resolve_roots(env=env)}
    assert roots == {
        ("claude", "/cfg/claude/projects"),
        ("codex", "/cfg/codex/sessions"),
        ("codex", "/cfg/codex/archived_sessions"),
        ("copilot", "/cfg/copilot/session-state"),
        ("copilot", "/cfg/copilot/history-session-state"),
        ("gemini", "/cfg/gemini-home/.gemini/tmp"),
    }
    custom = resolve_roots([(agent, Path("/x"))], env=env)
    assert {str(r.path) for r in custom if r.agent == agent} == {"/x"}


def test_two_names_of_one_file_are_one_source(db: Database, tmp_path: Path) -> None:
    """A transcript reachable under two paths (a symlinked folder) is not 'moved' back and forth."""
    target = claude_project(tmp_path) / "s.jsonl"
    target.write_bytes(b'{"sessionId":"s","n":1}\n')
    alias_dir = tmp_path / "alias"
    alias_dir.symlink_to(target.parent)
    capturer = Capturer(db)
    for _ in range(3):
        capturer.capture_file(target, CLAUDE)
        capturer.capture_file(alias_dir / "s.jsonl", CLAUDE)
    with open(target, "ab") as fh:
        fh.write(b'{"n":2}\n')
    capturer.capture_file(alias_dir / "s.jsonl", CLAUDE)
    assert [e.line for e in captured(db)] == [b'{"sessionId":"s","n":1}', b'{"n":2}']
    assert list(EventLog(db).read(types=["SourceFileMoved"])) == []
