"""Gemini CLI: ``~/.gemini/tmp/<project>/chats/session-<YYYY-MM-DDTHH-MM>-<id8>.json[l]``.

``GEMINI_CLI_HOME`` replaces the home directory (``packages/core/src/utils/paths.ts``).
``<project>`` is the SHA-256 of the project root before v0.29, a short slug after.

Up to v0.38 the session is one JSON document rewritten whole on every change: it is captured
as a document (:mod:`skillopsd.sources._documents`), its ``messages`` identified by ``id``.
From v0.39 it is append-only JSON lines (a metadata line, messages appended again under their
``id`` when they change, ``$set`` and ``$rewindTo`` lines), tailed like any transcript; a
resumed legacy session is migrated into a ``.jsonl`` beside its ``.json``. Subagent sessions
are ``chats/<parent sessionId>/<sessionId>.json[l]`` and belong to their parent's session.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._store import DocumentShape, SessionRef, Store

_SHAPE = DocumentShape(collections=("messages",), id_field="id")
_SUFFIXES = (".json", ".jsonl")


class GeminiStore(Store):
    agent = "gemini"

    def default_roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        override = env.get("GEMINI_CLI_HOME")
        base = Path(override).expanduser() if override else home
        return [base / ".gemini" / "tmp"]

    def claims(self, relative: Path) -> bool:
        parts = relative.parts
        if relative.suffix not in _SUFFIXES or len(parts) < 3 or parts[1] != "chats":
            return False
        if len(parts) == 3:  # <project>/chats/session-*.json[l]
            return parts[2].startswith("session-")
        return len(parts) == 4  # <project>/chats/<parent sessionId>/<sessionId>.json[l]

    def document(self, path: Path) -> DocumentShape | None:
        return _SHAPE if path.suffix == ".json" else None

    def session_of(self, path: Path, head: list[Any]) -> SessionRef:
        parts = path.parts
        if len(parts) >= 3 and parts[-3] == "chats":
            # A subagent's file: it is shown inside the session that spawned it (its own id
            # is in its metadata; the deriver tells it by its path).
            return SessionRef(session=parts[-2])
        return SessionRef(session=_session_id(head) or path.stem)

    def sniff(self, head: list[Any]) -> bool:
        return any(
            isinstance(r, dict)
            and (
                ("sessionId" in r and "projectHash" in r)
                or (len(r) == 1 and ("$set" in r or "$rewindTo" in r))
            )
            for r in head
        )


def _session_id(head: list[Any]) -> str:
    for record in head:
        if isinstance(record, dict):
            sid = record.get("sessionId")
            if isinstance(sid, str) and sid:
                return sid
    return ""
