"""Real-shaped Claude Code and Codex sessions of a skill, built from the captured qvr fixtures.

Each story edits only what it is about (the skill body and directory, the prompt, the calls
the agent made, the final answer); every other record is the real one, so the deriver reads
them as it reads a real home.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .conftest import SHARED

FIXTURES = SHARED / "fixtures" / "qvr"
_CLAUDE_ID = "4438ec3f-cef8-537e-8237-ef36ba665ed7"
_CODEX_ID = "019e85b4-1c72-7261-87c9-0057f1788e50"
_TOOL_INPUTS: dict[str, dict[str, Any]] = {
    "Read": {"file_path": "/work/app/src/slug.py"},
    "Edit": {"file_path": "/work/app/src/slug.py", "old_string": "a", "new_string": "b"},
    "Bash": {"command": "python -m pytest -q", "description": "Run the tests"},
    "WebFetch": {"url": "https://example.com", "prompt": "read"},
    "Grep": {"pattern": "slug", "path": "/work/app"},
}


def _records(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def _stamp(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The ids an agent gives its responses and tool calls: unique to one session in real
# transcripts, so each story gets its own (a session whose ids are all another's is a copy of
# it: projections.copies).
_IDS = re.compile(r'(?<=": )"((?:msg|req|toolu|call)_[0-9A-Za-z_]+)"')  # values, not keys


def _write(path: Path, records: list[dict[str, Any]], old_id: str, new_id: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    mark = new_id.replace("-", "")
    text = _IDS.sub(lambda m: f'"{m[1]}_{mark}"', text)
    path.write_text(text.replace(old_id, new_id))
    return path


def claude_session(
    home: Path,
    *,
    session: str,
    skill: str,
    skill_dir: Path,
    body: str,
    prompt: str,
    tools: list[str],
    final: str,
    start: datetime,
) -> Path:
    """A Claude Code session that loads ``skill`` (``body`` from ``skill_dir``) via the Skill
    tool, then calls ``tools`` in order (each succeeding) and answers ``final``."""
    src = _records("claude_skill.jsonl")
    head, final_record, tail = src[:11], src[11], src[12:]
    for n, record in enumerate(head):
        if "timestamp" in record:
            record["timestamp"] = _stamp(start, n * 0.5)
    head[0]["content"] = prompt
    head[2]["message"]["content"] = prompt
    head[7]["message"]["content"][0]["input"] = {"skill": skill}
    head[8]["message"]["content"][0]["content"] = f"Launching skill: {skill}"
    head[8]["toolUseResult"]["commandName"] = skill
    head[9]["message"]["content"][0]["text"] = (
        f"Base directory for this skill: {skill_dir}\n\n{body}"
    )
    records = list(head)
    parent = head[10]["uuid"]
    template_call, template_result = src[7], src[8]
    for n, tool in enumerate(tools):
        call = copy.deepcopy(template_call)
        call_id = f"toolu_{session[:8]}{n:04d}"
        call["uuid"] = f"{session[:8]}-call-{n}"
        call["parentUuid"] = parent
        call["timestamp"] = _stamp(start, 10 + n * 2)
        call["message"]["id"] = f"msg_{session[:8]}_{n}"
        call["message"]["content"] = [
            {"type": "tool_use", "id": call_id, "name": tool, "input": _TOOL_INPUTS[tool]}
        ]
        result = copy.deepcopy(template_result)
        result["uuid"] = f"{session[:8]}-result-{n}"
        result["parentUuid"] = call["uuid"]
        result["sourceToolAssistantUUID"] = call["uuid"]
        result["timestamp"] = _stamp(start, 11 + n * 2)
        result["message"]["content"] = [
            {"type": "tool_result", "tool_use_id": call_id, "content": "ok", "is_error": False}
        ]
        result["toolUseResult"] = (
            {"stdout": "3 passed", "stderr": "", "interrupted": False} if tool == "Bash" else {}
        )
        records += [call, result]
        parent = result["uuid"]
    final_record["parentUuid"] = parent
    final_record["timestamp"] = _stamp(start, 12 + 2 * len(tools))
    final_record["message"]["content"] = [{"type": "text", "text": final}]
    records.append(final_record)
    records += tail
    path = home / ".claude" / "projects" / "-work-app" / f"{session}.jsonl"
    return _write(path, records, _CLAUDE_ID, session)


_CODEX_CALLS: dict[str, tuple[str, str, str]] = {
    # tool -> (item type, name, arguments or input)
    "exec_command": ("function_call", "exec_command", '{"cmd":"python -m pytest -q"}'),
    "apply_patch": ("custom_tool_call", "apply_patch", "*** Begin Patch\n*** End Patch\n"),
}


def codex_session(
    home: Path,
    *,
    session: str,
    skill: str,
    skill_dir: Path,
    body: str,
    prompt: str,
    tools: list[str],
    final: str,
    start: datetime,
) -> Path:
    """A Codex session that reads ``skill_dir/SKILL.md`` (printing ``body``), then makes the
    calls ``tools`` (``exec_command`` / ``apply_patch``) and answers ``final``."""
    src = _records("codex_skill.jsonl")
    meta, started, permissions, context = src[0], src[1], src[2], src[4]
    records: list[dict[str, Any]] = [meta, started, permissions, context]
    clock = iter(range(1000))

    def item(payload: dict[str, Any], kind: str = "response_item") -> dict[str, Any]:
        return {"timestamp": _stamp(start, next(clock)), "type": kind, "payload": payload}

    for record in records:
        record["timestamp"] = _stamp(start, 0)
    meta["payload"]["timestamp"] = _stamp(start, 0)
    # Codex advertises the skills it may read; this one among them.
    for block in permissions["payload"]["content"]:
        text = block.get("text", "")
        if "<skills_instructions>" in text and "(file: " in text:
            at = text.index("\n- ", text.index("<skills_instructions>"))
            entry = f"\n- {skill}: the skill under test (file: {skill_dir}/SKILL.md)"
            block["text"] = text[:at] + entry + text[at:]
    records += [
        item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}
        ),
        item({"type": "user_message", "message": prompt, "images": []}, "event_msg"),
        item(
            {
                "type": "function_call",
                "name": "exec_command",
                "arguments": json.dumps(
                    {"cmd": f"cat {skill_dir}/SKILL.md", "workdir": "/work/app"}
                ),
                "call_id": "call_skill",
            }
        ),
        item(
            {
                "type": "function_call_output",
                "call_id": "call_skill",
                "output": f"Chunk ID: 1\nProcess exited with code 0\nOutput:\n{body}\n",
            }
        ),
    ]
    for n, tool in enumerate(tools):
        kind, name, arguments = _CODEX_CALLS[tool]
        call: dict[str, Any] = {"type": kind, "name": name, "call_id": f"call_{n}"}
        call["arguments" if kind == "function_call" else "input"] = arguments
        output = (
            "Chunk ID: 2\nProcess exited with code 0\nOutput:\n3 passed\n"
            if kind == "function_call"
            else "Success. Updated the following files:\nM src/slug.py\n"
        )
        records += [
            item(call),
            item({"type": f"{kind}_output", "call_id": f"call_{n}", "output": output}),
        ]
    records += [
        item({"type": "agent_message", "message": final, "phase": "final_answer"}, "event_msg"),
        item(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": final}],
                "phase": "final_answer",
            }
        ),
        item({"type": "task_complete", "turn_id": started["payload"]["turn_id"]}, "event_msg"),
    ]
    day = home / ".codex" / "sessions" / start.strftime("%Y/%m/%d")
    path = day / f"rollout-{start.strftime('%Y-%m-%dT%H-%M-%S')}-{session}.jsonl"
    return _write(path, records, _CODEX_ID, session)


def skill_dir(root: Path, skill: str, body: str, evals: str | None = None) -> Path:
    """A skill folder as an agent loads it: SKILL.md (with frontmatter) and maybe evals.yaml."""
    directory = root / skill
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "SKILL.md").write_text(f"---\nname: {skill}\ndescription: test\n---\n\n{body}\n")
    if evals is not None:
        (directory / "evals.yaml").write_text(evals)
    return directory


T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
