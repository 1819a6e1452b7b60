"""Agent-neutral tool kinds: the one table that lets a suite say ``shell`` for Claude's ``Bash``
and Codex's ``exec_command`` alike.

Derivation stamps the kind on every TOOL and SKILL span as ``skillops.tool.kind``; graders
match it beside the agent's own tool name. A tool missing from the table has no kind (it is
matched by its own name only), never a guessed one.
"""

from __future__ import annotations

KIND_ATTRIBUTE = "skillops.tool.kind"
TOOL_KINDS = ("shell", "edit", "read", "search", "web", "agent", "skill")

_TABLE: dict[str, tuple[str, ...]] = {
    "shell": (
        # Claude Code
        "Bash",
        "BashOutput",
        "KillShell",
        "KillBash",
        # Codex
        "exec_command",
        "shell",
        "local_shell",
        "local_shell_call",
        "container.exec",
        "unified_exec",
        "write_stdin",
        # Copilot CLI
        "bash",
        "powershell",
        "read_bash",
        "write_bash",
        "stop_bash",
        "read_powershell",
        "write_powershell",
        "stop_powershell",
        # Gemini CLI
        "run_shell_command",
    ),
    "edit": (
        "Edit",
        "MultiEdit",
        "Write",
        "NotebookEdit",
        "apply_patch",
        # Copilot CLI
        "edit",
        "create",
        # Gemini CLI
        "replace",
        "write_file",
    ),
    "read": ("Read", "NotebookRead", "view_image", "read_file", "read_many_files", "view"),
    "search": (
        "Grep",
        "Glob",
        "LS",
        "ToolSearch",
        "grep_files",
        "list_dir",
        "file_search",
        # Copilot CLI
        "grep",
        # Gemini CLI (search_file_content: grep_search's name before 0.10)
        "glob",
        "grep_search",
        "search_file_content",
        "list_directory",
    ),
    "web": (
        "WebFetch",
        "WebSearch",
        "web_search",
        "web_search_call",
        "web_fetch",
        "google_web_search",
    ),
    "agent": (
        "Task",
        "Agent",
        "spawn_agent",
        "send_input",
        "wait",
        "close_agent",
        "invoke_agent",
        # Copilot CLI
        "task",
        "read_agent",
        "write_agent",
        "list_agents",
    ),
    "skill": ("Skill", "activate_skill", "skill"),
}
_BY_NAME: dict[str, str] = {name: kind for kind, names in _TABLE.items() for name in names}


def known_tool(name: str) -> bool:
    """Whether ``name`` is a tool some agent calls by that name (in the table)."""
    return name in _BY_NAME


def tool_kind(tool_name: str | None, span_kind: str) -> str | None:
    """The kind of a call: a SKILL span is always ``skill``; else by the agent's tool name."""
    if span_kind == "SKILL":
        return "skill"
    if tool_name is None:
        return None
    return _BY_NAME.get(tool_name)
