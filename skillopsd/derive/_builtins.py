"""The agents' own slash commands: typed like a skill, but part of the agent, never a skill.

A built-in such as Claude Code's ``/init`` or ``/review`` sends the model a prompt of its own,
which reads like a slash command that loaded a skill; it is not one, so it never becomes a
``SKILL`` span, a skill of the session or a skill version. A name here that loads a skill body
from a folder (``Base directory for this skill: …``) or through the Skill tool is still a
skill: only the agent's own command is set aside. Skills the agents bundle (Claude Code's
``/simplify``, ``/batch``, ``/debug``, ``/loop``) are documented as skills and stay skills.

Sources: Claude Code's commands reference (code.claude.com/docs/en/slash-commands, 2.1.x),
Codex's ``codex-rs/tui/src/slash_command.rs``, Gemini CLI's ``docs/cli/commands.md``, Copilot
CLI's ``/help``.
"""

from __future__ import annotations

CLAUDE = frozenset(
    {
        "add-dir", "agents", "allowed-tools", "bashes", "branch", "btw", "bug", "checkpoint",
        "clear", "color", "compact", "config", "context", "continue", "copy", "cost", "desktop",
        "diff", "doctor", "effort", "exit", "export", "extra-usage", "fast", "feedback", "files",
        "fork", "heapdump", "help", "hooks", "ide", "init", "insights", "install-github-app",
        "install-slack-app", "keybindings", "login", "logout", "mcp", "memory",
        "migrate-installer", "mobile", "model", "new", "output-style", "output-style:new",
        "passes", "permissions", "plan", "plugin", "plugins", "pr-comments", "privacy-settings",
        "quit", "rate-limit-options", "recap", "release-notes", "reload-plugins", "remote-control",
        "remote-env", "remove-dir", "rename", "reset", "resume", "review", "rewind", "sandbox",
        "security-review", "settings", "skills", "stats", "status", "statusline", "stickers",
        "tag", "tasks", "terminal-setup", "theme", "think-back", "todos", "upgrade", "usage",
        "vim",
    }
)  # fmt: skip
CODEX = frozenset(
    {
        "agent", "approvals", "apps", "clear", "collab", "compact", "debug-config", "diff",
        "exit", "experimental", "feedback", "fork", "init", "logout", "mcp", "memory-drop",
        "memory-update", "mention", "model", "new", "permissions", "personality", "plan", "ps",
        "quit", "rename", "resume", "review", "rollout", "setup-default-sandbox", "skills",
        "status", "statusline", "test-approval", "undo",
    }
)  # fmt: skip
GEMINI = frozenset(
    {
        "about", "agents", "auth", "bug", "chat", "clear", "compress", "copy", "corgi", "dir",
        "directory", "docs", "editor", "exit", "extensions", "help", "hooks", "ide", "init",
        "mcp", "memory", "model", "permissions", "plan", "policies", "privacy", "quit",
        "restore", "resume", "rewind", "settings", "setup-github", "skills", "stats",
        "terminal-setup", "theme", "tools", "vim",
    }
)  # fmt: skip
COPILOT = frozenset(
    {
        "add-dir", "agent", "allow-all", "cd", "changelog", "clear", "compact", "context", "cwd",
        "delegate", "diff", "exit", "experimental", "feedback", "fleet", "help", "ide", "init",
        "instructions", "list-dirs", "login", "logout", "lsp", "mcp", "model", "new", "plan",
        "plugin", "quit", "rename", "reset-allowed-tools", "resume", "review", "session", "share",
        "skills", "streamer-mode", "tasks", "terminal-setup", "theme", "usage", "user", "yolo",
    }
)  # fmt: skip
BUILTIN_COMMANDS: dict[str, frozenset[str]] = {
    "claude": CLAUDE,
    "codex": CODEX,
    "gemini": GEMINI,
    "copilot": COPILOT,
}


def is_builtin(agent: str, command: str) -> bool:
    """Whether ``command`` (with or without its ``/``) is one of ``agent``'s own commands."""
    return command.lstrip("/").lower() in BUILTIN_COMMANDS.get(agent, frozenset())
