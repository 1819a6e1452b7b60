"""Where a skill's evals.yaml is: beside the SKILL.md the sessions actually loaded."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import apsw
import msgspec

from .manifest import MANIFEST_NAME

_dec = msgspec.json.Decoder()
_PATH = re.compile(r"([^\s'\"`;|&<>()]*/)?([A-Za-z0-9_.\-]+)/SKILL\.md")


def _from_arguments(skill: str, arguments: str, cwd: str | None) -> str | None:
    """The directory of ``skill``'s SKILL.md named in a tool call (a Codex read)."""
    workdir = cwd
    try:
        value = _dec.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("workdir"), str):
        workdir = value["workdir"]
    for match in _PATH.finditer(arguments):
        prefix, name = match.group(1) or "", match.group(2)
        directory = f"{prefix}{name}"
        if name != skill and not directory.endswith(f"/{skill}"):
            continue
        if directory.startswith("~/"):
            return directory
        if not directory.startswith("/") and workdir:
            directory = posixpath.join(workdir, directory)
        return posixpath.normpath(directory)
    return None


def recorded_directories(conn: apsw.Connection, skill: str) -> list[str]:
    """Directories the skill was loaded from, newest session first, each once."""
    out: list[str] = []
    rows = conn.execute(
        "SELECT json_extract(p.attributes, '$.\"skill.directory\"'),"
        " json_extract(p.attributes, '$.\"gen_ai.tool.call.arguments\"'), s.cwd"
        " FROM p_spans p JOIN p_sessions s USING (session_id)"
        " WHERE p.kind = 'SKILL' AND json_extract(p.attributes, '$.\"skill.name\"') = ?"
        " ORDER BY s.started_at DESC, p.seq DESC",
        (skill,),
    )
    for directory, arguments, cwd in rows:
        found = directory or (
            _from_arguments(skill, arguments, cwd) if isinstance(arguments, str) else None
        )
        if found and found not in out:
            out.append(found)
    for (directory,) in conn.execute(
        "SELECT directory FROM p_skill_versions WHERE skill = ? AND directory IS NOT NULL"
        " ORDER BY position DESC",
        (skill,),
    ):
        if directory not in out:
            out.append(directory)
    return out


def find_manifest(recorded: list[str], skill_dir: Path | None) -> tuple[Path | None, list[str]]:
    """The evals.yaml beside the recorded SKILL.md, else in ``skill_dir``; and where we looked."""
    looked = []
    for directory in recorded:
        path = Path(directory).expanduser() / MANIFEST_NAME
        looked.append(str(path.parent))
        if path.is_file():
            return path, looked
    if skill_dir is not None:
        path = skill_dir / MANIFEST_NAME
        looked.append(str(skill_dir))
        if path.is_file():
            return path, looked
    return None, looked
