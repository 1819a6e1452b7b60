#!/usr/bin/env python3
"""A stand-in for ``claude -p`` and ``codex exec --json`` that makes no model call.

It behaves as the real CLIs do where skillops can see it: run in a working folder, it loads
the project skill it finds there (Claude Code: ``.claude/skills/NAME/SKILL.md``; Codex:
``.agents/skills/NAME/SKILL.md``), writes a transcript of the real shape into the agent's
own store under ``$HOME`` (``~/.claude/projects/<cwd-slug>/<uuid>.jsonl`` or
``~/.codex/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl``, honouring ``CLAUDE_CONFIG_DIR``
and ``CODEX_HOME``) with the folder as ``cwd``, and prints its stream-json events.

What it does is read from the skill body, one rule per line, the first that applies wins::

    stub: when=<text in the prompt>; answer=<final message>; tools=Read,Edit,Bash; mode=<m>

``answer`` may be ``@FILE`` (the text of FILE in the working folder). ``mode``: ``ok``
(default), ``hang`` (writes the first lines, starts a child, then sleeps forever),
``crash`` (writes the first lines, exits 3), ``silent`` (answers but writes no transcript),
``fail`` (the last tool call fails). Without a skill it answers ``no skill``.

Usage: ``stub_agent.py -p PROMPT [--output-format stream-json --verbose]`` (Claude Code) or
``stub_agent.py exec --json PROMPT`` (Codex); a link named ``claude`` or ``codex`` works too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_TOOLS_CLAUDE: dict[str, dict[str, Any]] = {
    "Read": {"file_path": "README.md"},
    "Edit": {"file_path": "app.py", "old_string": "a", "new_string": "b"},
    "Bash": {"command": "python -m pytest -q", "description": "Run the tests"},
    "Grep": {"pattern": "TODO", "path": "."},
    "WebFetch": {"url": "https://example.com", "prompt": "read"},
}


class Rule:
    def __init__(self, line: str) -> None:
        self.when = ""
        self.answer = "done"
        self.tools: list[str] = []
        self.mode = "ok"
        for part in line.split(";"):
            key, _, value = part.strip().partition("=")
            key, value = key.strip(), value.strip()
            if key == "when":
                self.when = value
            elif key == "answer":
                self.answer = value
            elif key == "tools":
                self.tools = [t.strip() for t in value.split(",") if t.strip()]
            elif key == "mode":
                self.mode = value


def _rule(body: str, prompt: str) -> Rule:
    for line in body.splitlines():
        match = re.match(r"\s*stub:\s*(.*)$", line)
        if match:
            rule = Rule(match.group(1))
            if not rule.when or rule.when in prompt:
                return rule
    return Rule("answer=no rule matched")


def _find_skill(workdir: Path, folder: str) -> tuple[str, Path, str] | None:
    root = workdir / folder
    if not root.is_dir():
        return None
    for path in sorted(root.glob("*/SKILL.md")):
        return path.parent.name, path, path.read_text(encoding="utf-8")
    return None


def _strip_frontmatter(text: str) -> str:
    return re.sub(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", "", text, count=1, flags=re.DOTALL)


class Clock:
    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        at = self.start + timedelta(milliseconds=250 * self.n)
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Transcript:
    """Appends records to the agent's store file, one line each, flushed as it goes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _hang() -> None:
    # A child in the same process group: a timeout must take it down too.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    pidfile = os.environ.get("STUB_PIDFILE")
    if pidfile:
        with open(pidfile, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {child.pid}\n")
    while True:
        time.sleep(3600)


def _crash(message: str) -> None:
    sys.stderr.write(f"stub agent: {message}\n")
    sys.stderr.flush()
    os._exit(3)


def run_claude(prompt: str, workdir: Path, home: Path) -> int:
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    base = Path(config) if config else home / ".claude"
    sid = str(uuid.uuid4())
    slug = re.sub(r"[^A-Za-z0-9]", "-", str(workdir))
    found = _find_skill(workdir, ".claude/skills")
    rule = _rule(found[2], prompt) if found else Rule("answer=no skill")
    path = None if rule.mode == "silent" else base / "projects" / slug / f"{sid}.jsonl"
    out = Transcript(path)
    clock = Clock()
    common = {
        "userType": "external",
        "entrypoint": "sdk-cli",
        "cwd": str(workdir),
        "sessionId": sid,
        "version": "2.1.195",
        "gitBranch": "",
    }
    _emit(
        {
            "type": "system",
            "subtype": "init",
            "cwd": str(workdir),
            "session_id": sid,
            "tools": list(_TOOLS_CLAUDE),
            "model": "claude-sonnet-4-6",
            "skills": [found[0]] if found else [],
        }
    )
    out.write(
        {
            "type": "queue-operation",
            "operation": "enqueue",
            "timestamp": clock(),
            "sessionId": sid,
            "content": prompt,
        }
    )
    parent = str(uuid.uuid4())
    prompt_id = str(uuid.uuid4())
    out.write(
        {
            "parentUuid": None,
            "isSidechain": False,
            "promptId": prompt_id,
            "type": "user",
            "message": {"role": "user", "content": prompt},
            "uuid": parent,
            "timestamp": clock(),
            "permissionMode": "default",
            "promptSource": "sdk",
            **common,
        }
    )
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 15000,
        "output_tokens": 40,
        "service_tier": "standard",
    }

    def assistant(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
        nonlocal parent
        record = {
            "parentUuid": parent,
            "isSidechain": False,
            "message": {
                "model": "claude-sonnet-4-6",
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            },
            "requestId": f"req_{uuid.uuid4().hex[:24]}",
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "timestamp": clock(),
            **common,
        }
        parent = record["uuid"]
        out.write(record)
        _emit({"type": "assistant", "message": record["message"], "session_id": sid})
        return record

    def user(content: Any, **extra: Any) -> dict[str, Any]:
        nonlocal parent
        record = {
            "parentUuid": parent,
            "isSidechain": False,
            "promptId": prompt_id,
            "type": "user",
            "message": {"role": "user", "content": content},
            "uuid": str(uuid.uuid4()),
            "timestamp": clock(),
            **extra,
            **common,
        }
        parent = record["uuid"]
        out.write(record)
        return record

    if found:
        name, skill_path, text = found
        call = f"toolu_{uuid.uuid4().hex[:24]}"
        assistant(
            [{"type": "tool_use", "id": call, "name": "Skill", "input": {"skill": name}}],
            "tool_use",
        )
        user(
            [{"type": "tool_result", "tool_use_id": call, "content": f"Launching skill: {name}"}],
            toolUseResult={"success": True, "commandName": name},
        )
        body = _strip_frontmatter(text).strip()
        user(
            [
                {
                    "type": "text",
                    "text": f"Base directory for this skill: {skill_path.parent}\n\n{body}",
                }
            ],
            isMeta=True,
            sourceToolUseID=call,
        )
    if rule.mode == "hang":
        _hang()
    if rule.mode == "crash":
        _crash("the model connection was reset")
    for n, tool in enumerate(rule.tools):
        call = f"toolu_{uuid.uuid4().hex[:24]}"
        assistant(
            [{"type": "tool_use", "id": call, "name": tool, "input": _TOOLS_CLAUDE.get(tool, {})}],
            "tool_use",
        )
        failed = rule.mode == "fail" and n == len(rule.tools) - 1
        text = "Exit code 1\nFAILED tests/test_app.py::test_slug" if failed else "ok"
        user(
            [{"type": "tool_result", "tool_use_id": call, "content": text, "is_error": failed}],
            toolUseResult={"stdout": text, "stderr": "", "interrupted": False}
            if tool == "Bash"
            else {},
        )
    answer = _answer(rule, workdir)
    final = assistant([{"type": "text", "text": answer}], "end_turn")
    out.write(
        {
            "type": "last-prompt",
            "lastPrompt": prompt[:200],
            "leafUuid": final["uuid"],
            "sessionId": sid,
        }
    )
    _emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": answer,
            "session_id": sid,
            "num_turns": len(rule.tools) + 2,
        }
    )
    return 0


def run_codex(prompt: str, workdir: Path, home: Path) -> int:
    codex_home = os.environ.get("CODEX_HOME")
    base = Path(codex_home) if codex_home else home / ".codex"
    tid = str(uuid.uuid4())
    clock = Clock()
    found = _find_skill(workdir, ".agents/skills")
    rule = _rule(found[2], prompt) if found else Rule("answer=no skill")
    day = clock.start.strftime("%Y/%m/%d")
    name = f"rollout-{clock.start.strftime('%Y-%m-%dT%H-%M-%S')}-{tid}.jsonl"
    out = Transcript(None if rule.mode == "silent" else base / "sessions" / day / name)
    turn = str(uuid.uuid4())

    def item(payload: dict[str, Any], kind: str = "response_item") -> None:
        out.write({"timestamp": clock(), "type": kind, "payload": payload})

    _emit({"type": "thread.started", "thread_id": tid})
    out.write(
        {
            "timestamp": clock(),
            "type": "session_meta",
            "payload": {
                "id": tid,
                "timestamp": clock(),
                "cwd": str(workdir),
                "originator": "codex_exec",
                "cli_version": "0.135.0",
                "source": "exec",
                "thread_source": "user",
                "model_provider": "openai",
            },
        }
    )
    item({"type": "task_started", "turn_id": turn, "model_context_window": 258400}, "event_msg")
    _emit({"type": "turn.started"})
    listing = ""
    if found:
        listing = (
            "<skills_instructions>\n## Skills\n### Available skills\n"
            f"- {found[0]}: the project skill (file: {found[1]})\n</skills_instructions>"
        )
    item(
        {
            "type": "message",
            "role": "developer",
            "content": [
                {
                    "type": "input_text",
                    "text": "<permissions instructions>\n</permissions instructions>",
                },
                *([{"type": "input_text", "text": listing}] if listing else []),
            ],
        }
    )
    item(
        {
            "turn_id": turn,
            "cwd": str(workdir),
            "approval_policy": "never",
            "sandbox_policy": {"type": "read-only"},
            "model": "gpt-5.5",
        },
        "turn_context",
    )
    item({"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]})
    item({"type": "user_message", "message": prompt, "images": []}, "event_msg")
    calls = 0

    def call(command: str, output: str, code: int = 0) -> None:
        nonlocal calls
        calls += 1
        cid = f"call_{uuid.uuid4().hex[:24]}"
        item(
            {
                "type": "function_call",
                "name": "exec_command",
                "arguments": json.dumps({"cmd": command, "workdir": str(workdir)}),
                "call_id": cid,
            }
        )
        item(
            {
                "type": "function_call_output",
                "call_id": cid,
                "output": f"Chunk ID: {calls}\nWall time: 0.0100 seconds\nProcess exited with"
                f" code {code}\nOutput:\n{output}\n",
            }
        )
        _emit(
            {
                "type": "item.completed",
                "item": {
                    "id": f"item_{calls}",
                    "type": "command_execution",
                    "command": command,
                    "aggregated_output": output,
                    "exit_code": code,
                    "status": "completed" if code == 0 else "failed",
                },
            }
        )

    if found:
        call(f"cat {found[1]}", found[2])
    if rule.mode == "hang":
        _hang()
    if rule.mode == "crash":
        _crash("stream disconnected before completion")
    for n, tool in enumerate(rule.tools):
        failed = rule.mode == "fail" and n == len(rule.tools) - 1
        call(
            f"{tool.lower()} .",
            "FAILED tests/test_app.py::test_slug" if failed else "ok",
            1 if failed else 0,
        )
    answer = _answer(rule, workdir)
    item({"type": "agent_message", "message": answer, "phase": "final_answer"}, "event_msg")
    item(
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer}],
            "phase": "final_answer",
        }
    )
    item({"type": "task_complete", "turn_id": turn, "last_agent_message": answer}, "event_msg")
    _emit(
        {
            "type": "item.completed",
            "item": {"id": f"item_{calls + 1}", "type": "agent_message", "text": answer},
        }
    )
    _emit({"type": "turn.completed", "usage": {"input_tokens": 2400, "output_tokens": 40}})
    return 0


def _answer(rule: Rule, workdir: Path) -> str:
    if rule.answer.startswith("@"):
        try:
            return (workdir / rule.answer[1:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return f"cannot read {rule.answer[1:]}: {exc.strerror}"
    return rule.answer


def main(argv: list[str]) -> int:
    invoked = Path(argv[0]).name
    args = argv[1:]
    home = Path(os.environ.get("HOME", "/nonexistent"))
    workdir = Path.cwd()
    if invoked == "codex" or (args[:1] == ["exec"]):
        rest = [a for a in args if a not in ("exec", "--json")]
        if not rest:
            sys.stderr.write("usage: codex exec --json PROMPT\n")
            return 2
        return run_codex(rest[-1], workdir, home)
    if "-p" in args and args.index("-p") + 1 < len(args):
        return run_claude(args[args.index("-p") + 1], workdir, home)
    sys.stderr.write("usage: claude -p PROMPT --output-format stream-json --verbose\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
