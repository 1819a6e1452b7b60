"""``skill evidence`` fits the terminal like every other table and prose (reviewer G17): long
prompts, errors, notes and eval details wrap or are cut at ``$COLUMNS``, a TAB in a call's
output is expanded, and ``--json`` keeps every character as captured."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from skillopsd.cli._output import cells

from ._daemon import daemon_env
from .conftest import console_script

SID = "77777777-1717-4000-8000-000000000017"
PROMPT = "❯ GITSYNC_MAX_REF_UPDATES_PER_PUSH=5000 go run ./cmd/git-sync replicate " + " ".join(
    f"--flag-{n}=value-{n}" for n in range(30)
)
ERROR = (
    "internal/gitproto/helper.go:243:23: directive `//nolint:errcheck // force-teardown path;"
    ' wait status is the reported error` is unused for linter "errcheck" (nolintlint)\n'
    "\t_ = p.stdout.Close() //nolint:errcheck // force-teardown path; wait status is the"
    " reported error, and this line goes on well past any terminal\n"
    "\t                    ^"
)
NOTE = "迁移脚本在大仓库上超时了，" * 12 + " then it retried without a limit and ran out of memory"


def _transcript(home: Path) -> None:
    folder = home / ".claude" / "projects" / "-work-wide"
    folder.mkdir(parents=True)
    body = "Base directory for this skill: /work/wide/.claude/skills/wide\n\n# wide\nDo it.\n"
    usage = {"input_tokens": 10, "output_tokens": 5}
    lines = [
        {"type": "user", "message": {"role": "user", "content": PROMPT}},
        {
            "type": "assistant",
            "message": {
                "id": "msg_w1",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Skill", "input": {"skill": "wide"}}
                ],
                "usage": usage,
            },
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "Launching skill: wide"}
                ],
            },
        },
        {
            "type": "user",
            "isMeta": True,
            "sourceToolUseID": "t1",
            "message": {"role": "user", "content": [{"type": "text", "text": body}]},
        },
        {
            "type": "assistant",
            "message": {
                "id": "msg_w2",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t2",
                        "name": "Bash",
                        "input": {"command": "golangci-lint run", "description": "lint"},
                    }
                ],
                "usage": usage,
            },
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t2", "content": ERROR, "is_error": True}
                ],
            },
        },
        {
            "type": "assistant",
            "message": {
                "id": "msg_w3",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [{"type": "text", "text": "The lint still fails."}],
                "stop_reason": "end_turn",
                "usage": usage,
            },
        },
    ]
    with open(folder / f"{SID}.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(lines):
            d.update(
                sessionId=SID,
                uuid=f"w{i}",
                parentUuid=f"w{i - 1}" if i else None,
                timestamp=f"2026-11-05T11:00:{i:02d}.000Z",
                cwd="/work/wide",
            )
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 100])
def test_evidence_fits_the_terminal_and_expands_tabs(tmp_path: Path, columns: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = daemon_env(home, COLUMNS=str(columns))
    _transcript(home)
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)

    def ctl(*args: str) -> str:
        result = subprocess.run(
            [console_script("skillopsctl"), *args], env=env, capture_output=True, timeout=60
        )
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout.decode("utf-8")

    ctl("annotate", SID, "--label", "bad", "--note", NOTE)
    text = ctl("skill", "evidence", "wide")
    lines = text.splitlines()
    assert max(cells(line) for line in lines) <= columns, text
    assert "\t" not in text
    # Wrapped, not cut at the width: each field keeps what a line kept before (160 columns).
    joined = " ".join(text.split())
    assert "--flag-4=value-4" in joined and "reported error` is unused" in joined
    # Wide characters wrap by the columns they take: nothing is cut from the middle of the
    # note (it is whole up to the 160 columns a field keeps, then ends in "…").
    note = "".join(
        line[11:] for line in lines[lines.index(next(x for x in lines if "label    bad" in x)) :]
    )
    assert note.startswith("bad by") and note.endswith("…")
    kept = note.split(": ", 1)[1].removesuffix("…")
    assert NOTE.startswith(kept) and len(kept) >= 60, note
    assert "failure: failure:" not in joined  # the verdict is said once
    assert any(line.startswith("           ") and "_ = p.stdout.Close()" in line for line in lines)
    assert sum("prompt" in line for line in lines) == 1 and "label    bad by" in text
    # JSON is exact: the tab, the whole prompt and the note as captured.
    (session,) = json.loads(ctl("skill", "evidence", "wide", "--json"))
    assert PROMPT.startswith(session["first_prompt"]) and len(session["first_prompt"]) >= 300
    assert "\t_ = p.stdout.Close()" in session["failing_calls"][0]["error"]
    assert session["labels"][0]["note"] == NOTE
