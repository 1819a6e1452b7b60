"""Where a skill's evals.yaml is: beside the SKILL.md the sessions actually loaded."""

from __future__ import annotations

import os
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


def suite_of_record(conn: apsw.Connection, skill: str) -> str | None:
    """The one evals.yaml whose runs give a skill's executions and clear its gate.

    A managed skill's own: beside the SKILL.md it was imported from, when that file exists.
    Otherwise the file of the skill's first full run (every session, every suite): the gate
    remembers it, so a later evals.yaml beside some newer session, or a run of another file
    with ``--skill-dir``, never becomes "the suite as it is now" by accident. None until
    either exists.
    """
    row = conn.execute(
        "SELECT imported_from FROM p_managed_skills WHERE skill = ?", (skill,)
    ).fetchone()
    if row is not None:
        own = Path(row[0]).expanduser()
        own = (own if own.suffix.lower() != ".md" else own.parent) / MANIFEST_NAME
        if own.is_file():
            return str(own.absolute())
    for path, scope, suites, all_suites in conn.execute(
        "SELECT suite_path, scope, suites, all_suites FROM p_eval_runs WHERE skill = ?"
        " AND suite_path != '' ORDER BY position",
        (skill,),
    ):
        if not scope and sorted(_dec.decode(suites)) == sorted(_dec.decode(all_suites)):
            return str(path)
    return None


def same_file(a: str, b: str) -> bool:
    """Two spellings of one path (relative, ``~``, symlinked)."""
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


class NoSuite(Exception):
    """No evals.yaml to use, or the one asked for is not the suite of record; the message
    says which and where we looked. ``absent``: the skill has no suite at all (never had a
    suite of record, and none lies beside its SKILL.md): it is simply not evaluated."""

    def __init__(self, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


def suite_path(conn: apsw.Connection, skill: str, skill_dir: Path | None, *, gate: bool) -> Path:
    """The evals.yaml to grade ``skill`` with (``gate``: to clear its gate with).

    ``--skill-dir`` names a file explicitly; an eval run may grade any file so (its failures
    still hold the gate, its passes clear nothing unless it is the suite of record), but the
    gate accepts only the suite of record. Without it: the suite of record, else the file
    beside the SKILL.md the newest session loaded.
    """
    pinned = suite_of_record(conn, skill)
    if skill_dir is not None:
        path = (skill_dir.expanduser() / MANIFEST_NAME).absolute()
        if gate and pinned is not None and not same_file(str(path), pinned):
            raise NoSuite(
                f"the gate of skill {skill!r} uses {pinned} (its suite of record);"
                f" --skill-dir {skill_dir} names another file"
            )
        if not path.is_file():
            raise NoSuite(f"no evals.yaml for skill {skill!r} in {skill_dir}")
        return path
    if pinned is not None:
        if not Path(pinned).is_file():
            raise NoSuite(
                f"the suite of record of skill {skill!r}, {pinned}, is gone; put it back"
                " (the gate clears only on runs of it)"
            )
        return Path(pinned)
    found, looked = find_manifest(recorded_directories(conn, skill), None)
    if found is None:
        where = "; ".join(looked) or "no directory was recorded"
        raise NoSuite(
            f"no evals.yaml for skill {skill!r} (looked in: {where}); give --skill-dir DIR",
            absent=True,
        )
    return found.absolute()
