"""Codex CLI: ``~/.codex/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl``, and
``~/.codex/archived_sessions`` where archiving *moves* the file.

The first record is ``session_meta``; its ``payload.id`` is the thread id, and a child thread
(``spawn_agent``) names its parent in ``payload.source.subagent.thread_spawn``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._store import SessionRef, Store

_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def _parent(payload: dict[str, Any]) -> str:
    source = payload.get("source")
    if isinstance(source, dict):
        sub = source.get("subagent")
        if isinstance(sub, dict):
            spawn = sub.get("thread_spawn")
            if isinstance(spawn, dict) and isinstance(spawn.get("parent_thread_id"), str):
                return spawn["parent_thread_id"]
    parent = payload.get("parent_thread_id")
    return parent if isinstance(parent, str) else ""


class CodexStore(Store):
    agent = "codex"

    def default_roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        codex_home = env.get("CODEX_HOME")
        base = Path(codex_home).expanduser() if codex_home else home / ".codex"
        return [base / "sessions", base / "archived_sessions"]

    def claims(self, relative: Path) -> bool:
        return relative.suffix == ".jsonl" and relative.name.startswith("rollout-")

    def session_of(self, path: Path, head: list[Any]) -> SessionRef:
        # A forked child starts with its own meta, then the parent's: the first one wins.
        for record in head:
            if isinstance(record, dict) and record.get("type") == "session_meta":
                payload = record.get("payload")
                if isinstance(payload, dict) and isinstance(payload.get("id"), str):
                    return SessionRef(session=payload["id"], parent_session=_parent(payload))
        match = _UUID.search(path.stem)
        return SessionRef(session=match.group(1) if match else path.stem)

    def sniff(self, head: list[Any]) -> bool:
        return any(
            isinstance(r, dict)
            and "payload" in r
            and r.get("type") in ("session_meta", "response_item", "event_msg", "turn_context")
            for r in head
        )
