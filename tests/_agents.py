"""The real sessions of the newer agents (``shared/corpus/agents``), laid out as each agent
lays them out: the contract suite and the per-agent tests take their fixtures from here."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from .conftest import SHARED

AGENTS_CORPUS = SHARED / "corpus" / "agents"
GEMINI_PROJECT = "5f0d7b1c"  # any <project> folder name will do


def gemini_files() -> list[Path]:
    """Every real Gemini CLI session file of the corpus (legacy ``.json`` and ``.jsonl``).

    None on a fresh clone without ``shared/`` beside it: modules parametrize on this list at
    import, so a missing corpus must not stop collection (the tests then skip, or fail under
    SKILLOPS_REQUIRE_SHARED).
    """
    folder = AGENTS_CORPUS / "gemini"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def agent_corpus(agent: str) -> Path:
    """The folder of ``agent``'s real sessions; raises naming it when ``shared/`` is absent
    (the skip machinery turns that failure into a skip, CI into a failure)."""
    folder = AGENTS_CORPUS / agent
    if not folder.is_dir():
        raise FileNotFoundError(f"no such directory: {folder}")
    return folder


def gemini_file(prefix: str) -> Path:
    """The corpus' Gemini session file whose name starts with ``prefix`` (a path under
    ``shared/`` even when the corpus is absent, so the tests that read it skip)."""
    found = [f for f in gemini_files() if f.name.startswith(prefix)]
    return found[0] if found else AGENTS_CORPUS / "gemini" / prefix


def fixture_files() -> dict[str, list[Path]]:
    """Each agent's real fixture files, by agent name (for the shared contract suite)."""
    return {"gemini": gemini_files()}


def gemini_chats(home: Path, project: str = GEMINI_PROJECT) -> Path:
    chats = home / ".gemini" / "tmp" / project / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    return chats


def gemini_name(source: Path) -> str:
    """The name Gemini CLI gives the session file of ``source`` (``session-<ts>-<id8>``)."""
    return f"session-2026-01-01T00-00-{source.stem[:8]}{source.suffix}"


def layout_gemini(home: Path, source: Path) -> Path:
    """``source`` copied to where Gemini CLI writes it under ``home``."""
    dest = gemini_chats(home) / gemini_name(source)
    shutil.copy(source, dest)
    return dest


def gemini_document(path: Path) -> dict[str, object]:
    """A legacy Gemini session document, decoded."""
    doc = msgspec.json.decode(path.read_bytes())
    assert isinstance(doc, dict)
    return doc


def write_document(path: Path, doc: dict[str, object]) -> None:
    """Rewrite ``path`` in place the way the legacy Gemini writer does (truncate, write)."""
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(0)
        fh.write(msgspec.json.format(msgspec.json.encode(doc), indent=2))
