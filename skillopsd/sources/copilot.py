"""GitHub Copilot CLI: ``~/.copilot/session-state/<id>/events.jsonl`` (current), the older flat
``~/.copilot/session-state/<id>.jsonl``, and legacy single-document JSON under
``~/.copilot/history-session-state/<id>.json``.

``COPILOT_HOME`` moves the whole directory (github/copilot-cli#1954: it redirects session
state and the session store, unlike ``XDG_CONFIG_HOME``, which only ever moved settings).
An event stream's first record is ``session.start`` whose ``data.sessionId`` names the
session; subagents write into their parent's file, so there are no child files. A legacy
document is rewritten whole, so it is captured as a document (each chat message and timeline
entry once, see :mod:`skillopsd.documents`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._store import DocumentShape, SessionRef, Store

# A legacy document's records: chat messages have no id (identified by their place, and only
# ever appended), timeline entries do.
_SHAPE = DocumentShape(collections=("chatMessages", "timeline"), id_field="id")
# Event types only Copilot's event stream uses: a record is Copilot's if it has ``data`` and
# one of these types (or a dotted type with its ``id`` / ``parentId`` envelope).
_TYPES = {
    "session.start",
    "session.resume",
    "session.shutdown",
    "session.model_change",
    "user.message",
    "assistant.message",
    "assistant.turn_start",
    "assistant.turn_end",
    "tool.execution_start",
    "tool.execution_complete",
    "system.message",
    "hook.start",
    "hook.end",
}


def is_event(record: Any) -> bool:
    """Whether a decoded record is a Copilot CLI session event."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("type"), str)
        and "data" in record
        and (record["type"] in _TYPES or ("parentId" in record and "." in record["type"]))
    )


def is_legacy_document(record: Any) -> bool:
    """Whether a decoded value is a legacy ``history-session-state`` document."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("sessionId"), str)
        and isinstance(record.get("timeline"), list)
        and "chatMessages" in record
    )


class CopilotStore(Store):
    agent = "copilot"

    def default_roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        override = env.get("COPILOT_HOME")
        base = Path(override).expanduser() if override else home / ".copilot"
        return [base / "session-state", base / "history-session-state"]

    def claims(self, relative: Path) -> bool:
        parts = relative.parts
        if len(parts) == 2:  # <id>/events.jsonl
            return parts[1] == "events.jsonl"
        if len(parts) == 1:  # <id>.jsonl (older flat layout) or a legacy <id>.json document
            return relative.suffix in (".jsonl", ".json")
        return False

    def document(self, path: Path) -> DocumentShape | None:
        return _SHAPE if path.suffix == ".json" else None

    def session_of(self, path: Path, head: list[Any]) -> SessionRef:
        for record in head:
            if not isinstance(record, dict):
                continue
            data = record.get("data")
            if record.get("type") == "session.start" and isinstance(data, dict):
                sid = data.get("sessionId")
                if isinstance(sid, str) and sid:
                    return SessionRef(session=sid)
            if is_legacy_document(record):
                return SessionRef(session=record["sessionId"])
        if path.name == "events.jsonl":
            return SessionRef(session=path.parent.name)
        return SessionRef(session=path.stem)

    def sniff(self, head: list[Any]) -> bool:
        return any(is_event(r) or is_legacy_document(r) for r in head)
