"""Claude Code: ``~/.claude/projects/<cwd-slug>/<sessionId>.jsonl`` and its subagent files.

Subagent files of every era belong to their parent session: 2.1.x
``<sessionId>/subagents/agent-<id>.jsonl`` (and ``subagents/workflows/<wf>/agent-*.jsonl``),
2.0.x ``agent-<id>.jsonl`` beside the session; 1.0.x subagents are inline in the main file.
Every record carries ``sessionId`` (the parent's, in subagent files), which wins over the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._store import SessionRef, Store


class ClaudeStore(Store):
    agent = "claude"

    def default_roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        config = env.get("CLAUDE_CONFIG_DIR")
        base = Path(config).expanduser() if config else home / ".claude"
        return [base / "projects"]

    def claims(self, relative: Path) -> bool:
        parts = relative.parts
        if relative.suffix != ".jsonl":
            return False
        if len(parts) == 2:  # <slug>/<sessionId>.jsonl or 2.0.x <slug>/agent-<id>.jsonl
            return True
        # <slug>/<sessionId>/subagents/[workflows/<wf>/]agent-<id>.jsonl
        return len(parts) >= 4 and parts[2] == "subagents" and parts[-1].startswith("agent-")

    def session_of(self, path: Path, head: list[Any]) -> SessionRef:
        for record in head:
            if isinstance(record, dict):
                sid = record.get("sessionId") or record.get("session_id")
                if isinstance(sid, str) and sid:
                    return SessionRef(session=sid)
        parts = path.parts
        if "subagents" in parts:
            return SessionRef(session=parts[parts.index("subagents") - 1])
        return SessionRef(session=path.stem)

    def sniff(self, head: list[Any]) -> bool:
        return any(
            isinstance(r, dict) and ("sessionId" in r or "parentUuid" in r or "leafUuid" in r)
            for r in head
        )
