"""Why a call failed or was blocked, in one line, from the result text the deriver kept."""

from __future__ import annotations

import re

import msgspec

# Header lines Claude Code and Codex put before a command's own output.
_EXIT = re.compile(r"\A(?:Exit code:? |Process exited with code )(-?\d+)\s*\Z")
_HEADER = re.compile(
    r"\A(?:(?:Command|Chunk ID|Wall time|Original token count|Total output lines):"
    r"|Process running with session ID \d+\Z)"
)
_OUTPUT = re.compile(r"\AOutput:\s*(.*)\Z")
_TAG = re.compile(r"</?tool_use_error>")
# A failed command's output often starts with progress ("ok pkg 0.4s", "On branch x"): the
# first line that reads like an error says why better than the first line.
_ERRORISH = re.compile(
    r"error|fail|fatal|panic|denied|not found|no such|cannot|can't|unable|invalid|refused"
    r"|nothing to commit|exception|traceback",
    re.IGNORECASE,
)


def _legacy_shell(text: str) -> str | None:
    """Older Codex ``shell`` output, ``{"output": …, "metadata": {"exit_code": N}}``, as text."""
    if not text.startswith("{"):
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("output"), str):
        return None
    metadata = value.get("metadata")
    code = metadata.get("exit_code") if isinstance(metadata, dict) else None
    head = f"Exit code {code}\n" if isinstance(code, int) else ""
    return head + value["output"]


def first_reason(text: object) -> str | None:
    """The first line that says why: ``exit 1: go: cannot find main module``, or None."""
    if not isinstance(text, str):
        return None
    text = _legacy_shell(text) or text
    exit_code: str | None = None
    reason = ""
    body: list[str] = []
    for raw in _TAG.sub("", text).splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if not body:
            exit_match = _EXIT.match(line)
            if exit_match:
                exit_code = exit_code or exit_match.group(1)
                continue
            if _HEADER.match(line):
                continue
            output = _OUTPUT.match(line)
            if output:
                if not output.group(1):
                    continue
                line = output.group(1)
        body.append(line)
        if exit_code is None or _ERRORISH.search(line):
            reason = line
            break
    reason = reason or (body[0] if body else "")
    if exit_code is not None:
        return f"exit {exit_code}: {reason}" if reason else f"exit {exit_code}"
    return reason or None
