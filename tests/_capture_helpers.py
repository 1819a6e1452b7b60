"""Shared helpers for capture tests: real transcripts, laid out as the agents lay them out."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from skillopsd.events import Database, EventLog
from skillopsd.events.types import (
    CaptureErrorRecorded,
    SourceFileMoved,
    SourceFileTracked,
    TranscriptLineCaptured,
)

from .conftest import SHARED

FIXTURES = SHARED / "fixtures" / "qvr"
CORPUS = SHARED / "corpus" / "real-home.tar.gz"

CLAUDE_SESSION = "ecc47d96-2519-4365-9804-a2aca67baaba"
CLAUDE_AGENT = "a8876cef462c86071"


def claude_project(home: Path) -> Path:
    project = home / ".claude" / "projects" / "-home-u-proj"
    project.mkdir(parents=True, exist_ok=True)
    return project


def layout_claude_pair(home: Path) -> tuple[Path, Path]:
    """The real parent/child fixtures, where Claude Code 2.1.x puts them."""
    project = claude_project(home)
    parent = project / f"{CLAUDE_SESSION}.jsonl"
    child = project / CLAUDE_SESSION / "subagents" / f"agent-{CLAUDE_AGENT}.jsonl"
    child.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "claude_subagent_parent.jsonl", parent)
    shutil.copy(FIXTURES / "claude_subagent_child.jsonl", child)
    return parent, child


def codex_path(home: Path, name: str = "codex_skill.jsonl") -> Path:
    session = "019e85b4-1c72-7261-87c9-0057f1788e50"
    day = home / ".codex" / "sessions" / "2026" / "06" / "02"
    day.mkdir(parents=True, exist_ok=True)
    return day / f"rollout-2026-06-02T00-20-34-{session}.jsonl"


def extract_corpus(dest: Path) -> Path:
    with tarfile.open(CORPUS) as tar:
        tar.extractall(dest, filter="data")
    return dest


def captured(db: Database) -> list[TranscriptLineCaptured]:
    """Every captured line, in log order."""
    log = EventLog(db)
    with db.read():
        return [e.payload for e in log.read(types=["TranscriptLineCaptured"])]  # type: ignore[misc]


def paths_by_source(db: Database) -> dict[str, str]:
    """Each source's latest path, folded from its tracked and moved events."""
    paths: dict[str, str] = {}
    with db.read():
        for e in EventLog(db).read(types=["SourceFileTracked", "SourceFileMoved"]):
            payload = e.payload
            if isinstance(payload, SourceFileTracked):
                paths[payload.source_id] = payload.path
            elif isinstance(payload, SourceFileMoved):
                paths[payload.source_id] = payload.new_path
    return paths


def capture_errors(db: Database) -> list[CaptureErrorRecorded]:
    log = EventLog(db)
    with db.read():
        return [e.payload for e in log.read(types=["CaptureErrorRecorded"])]  # type: ignore[misc]


def file_lines(path: Path) -> list[tuple[int, bytes]]:
    """(offset, line) of every complete line of a file."""
    out = []
    offset = 0
    data = path.read_bytes()
    for line in data.split(b"\n")[:-1]:
        out.append((offset, line))
        offset += len(line) + 1
    return out


def as_lines(rows: list[dict]) -> list[tuple[int, bytes]]:
    """(offset, line) of records written one JSON object per line."""
    import json

    out = []
    offset = 0
    for row in rows:
        raw = json.dumps(row).encode()
        out.append((offset, raw))
        offset += len(raw) + 1
    return out
