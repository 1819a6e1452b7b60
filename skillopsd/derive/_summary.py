"""What a session is, beyond its spans: times, title, working directory, skills, errors."""

from __future__ import annotations

from typing import Any

from ..events.types import TokenUsage
from ._input import Record
from ._title import title_line


class Summary:
    """Collects session-level facts while the spans are built."""

    def __init__(self) -> None:
        self.started_at: str | None = None
        self.ended_at: str | None = None
        self.cwd: str | None = None
        self.title: str | None = None
        self.first_prompt: str | None = None
        self.first_command: str | None = None
        self.tools = 0
        self.skills: list[str] = []
        self.errors: list[tuple[Record, str]] = []
        # Session-level totals an agent reports only per session or run (Copilot's shutdown):
        # they fill in what no model response reported.
        self.tokens: TokenUsage | None = None
        # What the token figures cover, when not every response's own full usage.
        self.tokens_note: str | None = None

    def see(self, value: dict[str, Any], timestamp: str | None) -> None:
        """Note a record's time and, for Claude records, its working directory and title."""
        if timestamp:
            if self.started_at is None or timestamp < self.started_at:
                self.started_at = timestamp
            if self.ended_at is None or timestamp > self.ended_at:
                self.ended_at = timestamp
        if self.cwd is None and isinstance(value.get("cwd"), str):
            self.cwd = value["cwd"]
        kind = value.get("type")
        if kind == "ai-title" and isinstance(value.get("aiTitle"), str):
            self.title = value["aiTitle"]
        elif kind == "custom-title" and isinstance(value.get("customTitle"), str):
            self.title = value["customTitle"]

    def prompt(self, text: str, *, command: str | None = None) -> None:
        """Note a user prompt; a slash command is a title only if no plain prompt follows."""
        if command is not None:
            if self.first_command is None:
                self.first_command = command
        elif self.first_prompt is None and title_line(text) is not None:
            # A prompt with nothing but injected context or template lines is not the request.
            self.first_prompt = text.strip()

    def tool(self) -> None:
        self.tools += 1

    def skill(self, name: str) -> None:
        if name not in self.skills:
            self.skills.append(name)

    def error(self, record: Record, message: str) -> None:
        self.errors.append((record, message))
