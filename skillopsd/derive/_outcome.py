"""How a tool call ended: ``blocked`` (a person, rule or hook stopped it), ``failure`` (it ran
and failed) or ``success``; ``None`` when no result was seen.

Every wording here is one the agents really write (../shared/reference/transcripts.md,
sections 3.4 and 3.6 for Claude Code of every era, section 4 for Codex).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

Outcome = Literal["success", "failure", "blocked"]

# Claude Code: the user, a permission rule or a hook stopped the call.
_CLAUDE_BLOCKED = (
    "The user doesn't want to proceed with this tool use",  # rejected prompt (2.x)
    "The user doesn't want to take this action right now",  # rejected prompt (1.0.x)
    "User rejected tool use",  # toolUseResult (2.1.1xx)
    "[Request interrupted by user for tool use]",  # interrupted while running
    "[Request interrupted by user]",
    "Operation stopped by hook",
    "blocked by hook",
    # A subagent's call refused by a permission rule (no one to ask), and the auto-mode
    # classifier's refusal (Claude Code's SUBAGENT_REJECT_MESSAGE, AUTO_MODE_REJECTION_PREFIX).
    "Permission for this tool use was denied",
    "Permission for this action has been denied",
    "Permission for this action was denied",
)
_CLAUDE_DENIED = re.compile(r"Permission to use \S+ (?:with .* )?has been denied", re.DOTALL)
# 1.0.x: a call that needed a permission the user had not granted.
_CLAUDE_NOT_GRANTED = re.compile(
    r"Claude requested permissions to .{0,2000}?but you haven't granted it yet", re.DOTALL
)
# Calls cancelled before they started because a parallel call failed: they never ran.
_CLAUDE_NOT_RUN = (
    ("Sibling tool call errored", "sibling_error"),
    ("Cancelled: parallel tool call", "sibling_error"),
)
# A Skill call whose skill never loaded (unknown name, or not a prompt-based skill).
_CLAUDE_SKILL_NOT_LOADED = re.compile(r"Unknown skill: |is not a prompt-based skill")
# A PreToolUse (or permission) hook that refused the call; or Claude Code itself refusing to
# run it ("<tool_use_error>Blocked: sleep 30 followed by: … To wait for a condition, use
# Monitor …", seen in the real corpus): the command never ran, a policy stopped it.
_CLAUDE_HOOK = re.compile(
    r"\A(?:(?:PreToolUse|PermissionRequest)(?::\S+)? hook|<tool_use_error>Blocked: )",
    re.IGNORECASE,
)
# User text that stops the turn: calls still waiting for a result were stopped with it.
TURN_STOPPERS = ("Operation stopped by hook", "[Request interrupted by user")
_CLAUDE_EXIT = re.compile(r"\AExit code (\d+)")
# Codex: declined approvals, guardian, exec-policy and sandbox refusals, interrupts.
_CODEX_BLOCKED = (
    "exec command rejected by user",
    "patch rejected by user",
    "rejected by user",
    "This action was rejected due to unacceptable risk",
    "sandbox denied exec error",
    "rejected: blocked by policy",
)
# The exec policy's refusal: "`<cmd>` rejected: <why>" (codex-rs execpolicy).
_CODEX_POLICY = re.compile(r"\A`[^`\n]*` rejected: ")
# A call stopped by an interrupt reports "aborted by user after 4.2s".
_CODEX_ABORTED = re.compile(r"\Aaborted by user\b")
# A tool-router error the model reads as the output: "<tool> failed: …", "exec_command failed for
# `<cmd>`: …", "collab spawn failed: …", "failed to parse function arguments: …".
_CODEX_ROUTER = re.compile(r"\A(?:[\w./-]+ ){0,2}failed\b")
# …except when what failed was the sandbox refusing the command (a policy, not the command).
_CODEX_SANDBOX = re.compile(r"Sandbox\(Denied|SandboxDenied|sandbox denied", re.IGNORECASE)
# Unified exec output starts with a header ("Command:", "Chunk ID:", "Wall time:", the process
# state, "Original token count:") and then "Output:"; only the header speaks for the process.
_PROCESS_EXIT = re.compile(r"^Process exited with code (-?\d+)$", re.MULTILINE)
_PROCESS_RUNNING = re.compile(r"^Process running with session ID (\d+)$", re.MULTILINE)
_EXIT_COLON = re.compile(r"Exit code: (-?\d+)")


# An edit that would change nothing: the agent's slip, not a setback of the session.
_NOOP_EDIT = (
    "No changes to make: old_string and new_string are exactly the same",  # Claude Code
    "No changes to apply. The old_string and new_string are identical",  # Gemini CLI
)
# Gemini CLI refusing a call (packages/core/src: config.ts validatePathAccess, the older
# generateWorkspacePathError, sandboxedFileSystemService.ts, scheduler/policy.ts, read-file.ts):
# the request was refused by the workspace boundary or a policy, not attempted and failed.
_GEMINI_REFUSED = re.compile(
    r"Path not in workspace|resolves outside the allowed workspace directories"
    r"|File path must be within one of the workspace directories|File path is outside the workspace"
    r"|is outside the workspace and not in allowed paths|Tool execution denied by policy"
    r"|is ignored by configured ignore patterns"
)


def is_noop_edit(text: object) -> bool:
    """Whether an edit's error says it would have changed nothing."""
    return isinstance(text, str) and any(phrase in text[:400] for phrase in _NOOP_EDIT)


def gemini_refused(text: str) -> bool:
    """Whether a Gemini CLI tool error is a refusal (workspace boundary, policy, ignore file)."""
    return _GEMINI_REFUSED.search(text[:1000]) is not None


def result_text(content: Any) -> str:
    """The text of a Claude ``tool_result`` content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    return ""


def claude_outcome(
    *, is_error: bool, text: str, tool_use_result: Any, denial_kind: str | None
) -> Outcome:
    """Classify a Claude Code tool result."""
    tur = tool_use_result if isinstance(tool_use_result, str) else ""
    if denial_kind:
        return "blocked"
    for phrase in _CLAUDE_BLOCKED:
        if phrase in text[:400] or phrase in tur[:400]:
            return "blocked"
    if (
        _CLAUDE_DENIED.search(text[:600])
        or _CLAUDE_HOOK.match(text)
        or _CLAUDE_NOT_GRANTED.search(text[:2400])
    ):
        return "blocked"
    exit_match = _CLAUDE_EXIT.match(text)
    if exit_match and exit_match.group(1) != "0":
        return "failure"
    if is_error:
        return "failure"
    if "<tool_use_error>" in text[:200] or tur.startswith("Error:"):
        return "failure"
    if isinstance(tool_use_result, dict) and tool_use_result.get("success") is False:
        return "failure"
    return "success"


def claude_not_run(text: str) -> str | None:
    """Why a Claude call never ran (``sibling_error``), or None if it ran."""
    head = text[:200]
    for phrase, reason in _CLAUDE_NOT_RUN:
        if phrase in head:
            return reason
    return None


def claude_skill_not_loaded(text: str) -> bool:
    """Whether a Skill call's result says the skill did not load."""
    return _CLAUDE_SKILL_NOT_LOADED.search(text[:400]) is not None


def codex_output_text(output: Any) -> str:
    """The text of a Codex ``function_call_output`` (a string, rarely an object)."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        for key in ("output", "content", "text"):
            if isinstance(output.get(key), str):
                return output[key]
    if isinstance(output, list):
        return result_text(output)
    return ""


class ExecHeader(msgspec.Struct, frozen=True):
    """What a unified-exec output's header says about its process."""

    exit_code: int | None = None  # the process has exited with this code
    session_id: str | None = None  # the process is still running under this id


def codex_exec_header(text: str) -> ExecHeader:
    """The process state in a unified-exec output (``exec_command`` or ``write_stdin``)."""
    marker = text.find("\nOutput:")
    head = text[:marker] if marker >= 0 else text[:2000]
    exited = _PROCESS_EXIT.search(head)
    running = _PROCESS_RUNNING.search(head)
    return ExecHeader(
        exit_code=int(exited.group(1)) if exited else None,
        session_id=running.group(1) if running else None,
    )


def codex_router_outcome(text: str) -> Outcome | None:
    """Blocked or failed before anything ran (refusals, router errors), else ``None``."""
    head = text[:2000]
    for phrase in _CODEX_BLOCKED:
        if phrase in head:
            return "blocked"
    if _CODEX_POLICY.match(head) or _CODEX_ABORTED.match(head):
        return "blocked"
    if _CODEX_ROUTER.match(head):
        return "blocked" if _CODEX_SANDBOX.search(head) else "failure"
    if head.startswith(("error:", "Error:")):
        return "failure"
    return None


def codex_outcome(text: str) -> Outcome | None:
    """Classify a Codex call output by its text (when no structured end event says more).

    ``None`` for a command still running: its exit arrives later, in a ``write_stdin`` poll.
    """
    early = codex_router_outcome(text)
    if early is not None:
        return early
    header = codex_exec_header(text)
    if header.exit_code is not None:
        return "success" if header.exit_code == 0 else "failure"
    if header.session_id is not None:
        return None
    head = text[:2000]
    m = _EXIT_COLON.search(head)
    if m and m.group(1) != "0":
        return "failure"
    # Older ``shell`` output: {"output": …, "metadata": {"exit_code": N}}.
    if head.startswith("{") and '"exit_code"' in head:
        legacy = re.search(r'"exit_code"\s*:\s*(-?\d+)', head)
        if legacy and legacy.group(1) != "0":
            return "failure"
    return "success"


def codex_poll_outcome(text: str) -> Outcome:
    """Classify a ``write_stdin`` output: the poll itself, not the process it reports on."""
    return codex_router_outcome(text) or "success"


def codex_mcp_end(result: Any) -> Outcome | None:
    """Classify ``mcp_tool_call_end``: ``{"Err": …}`` or ``{"Ok": {"isError": true}}`` failed."""
    if not isinstance(result, dict):
        return None
    if "Err" in result:
        return "failure"
    ok = result.get("Ok")
    if isinstance(ok, dict):
        return "failure" if ok.get("isError") or ok.get("is_error") else "success"
    return None


def codex_exec_end(status: str | None, exit_code: Any) -> Outcome | None:
    """Classify ``exec_command_end``: declined → blocked, failed / non-zero exit → failure."""
    if status == "declined":
        return "blocked"
    if status == "failed" or (isinstance(exit_code, int) and exit_code != 0):
        return "failure"
    if status == "completed":
        return "success"
    return None
