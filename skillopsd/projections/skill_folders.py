"""Which folder each load of a skill came from, and whether one name covers several skills.

skillops keys a skill by its name, but a project's own skill (``<project>/.claude/skills/deploy``)
is not the same skill as another project's ``deploy``: common names (deploy, test, review,
release) recur across repositories. The transcripts say where each body was loaded from
(``skill.directory`` on the SKILL span), so the readers can tell versions of one skill from
bodies of different skills that share a name, and refuse to present the second as an edit.

A load's **scope** is what makes it one skill:

- a folder a managed skill was imported from or written to (``skill import``, ``add-live``):
  the managed skill, whichever project that folder is in;
- ``<root>/.claude|.codex|.github|.gemini|.agents|.copilot/skills/<name>``: ``<root>``, the
  project (or the home folder, for a user-level skill: one root, whatever project the
  session ran in);
- anything else (a plugin's cache folder, which carries the plugin's version; no folder
  recorded): no scope, which never splits a name.

Paths are compared as written (``\\`` read as ``/``, ``.``/``..``/repeated and trailing
slashes collapsed, Windows paths case-folded): the log holds no file system, so one project
reached through two paths (a symbolic link) counts as two.
"""

from __future__ import annotations

import posixpath
import re

import apsw
import msgspec

from .skill_aliases import names_of

MANAGED = "managed"  # the scope of every load from a managed skill's own folders
_AGENT_DIRS = ("agents", "claude", "codex", "copilot", "gemini", "github")
_PROJECT_SKILL = re.compile(
    r"\A(?P<root>.*)/\.(?:" + "|".join(_AGENT_DIRS) + r")/skills/[^/]+\Z", re.IGNORECASE
)
# A drive letter, or a UNC path written with backslashes (``//x`` on Linux is ``/x``).
_WINDOWS = re.compile(r"\A(?:[A-Za-z]:[\\/]|\\\\)")


def normalized(path: str) -> str:
    """``path`` as compared: ``/`` separators, no ``.``/``..``/repeated or trailing slashes;
    a Windows path (drive letter or UNC) case-folded, as Windows compares names."""
    windows = bool(_WINDOWS.match(path.strip()))
    text = path.strip().replace("\\", "/")
    if not text:
        return ""
    text = posixpath.normpath(text)
    if text.startswith("//") and not windows:
        text = "/" + text.lstrip("/")
    return text.casefold() if windows else text


def skill_folder(path: str) -> str:
    """The skill folder a live file or an import source names (its ``SKILL.md``'s folder)."""
    text = normalized(path)
    head, _, tail = text.rpartition("/")
    return head if tail.casefold() == "skill.md" and head else text


def project_of(directory: str) -> str | None:
    """The folder whose ``.claude/skills`` (``.codex``, ``.github``, …) holds ``directory``:
    the project of a project-level skill, the home of a user-level one; None otherwise."""
    found = _PROJECT_SKILL.match(normalized(directory))
    if found is None:
        return None
    return found.group("root") or "/"


class Folders(msgspec.Struct):
    """Where a skill's loads came from: per version (body hash), the scopes of its loads and
    the folders themselves. ``shared``: the name covers skills of more than one scope."""

    scopes: list[str]
    by_version: dict[str, list[str]]
    folders: dict[str, list[str]]

    @property
    def shared(self) -> bool:
        return len(self.scopes) > 1

    def of(self, version_hash: str) -> list[str]:
        """The scopes ``version_hash`` was loaded from (empty: none recorded a folder)."""
        return self.by_version.get(version_hash, [])

    def apart(self, a: str, b: str) -> bool:
        """Whether versions ``a`` and ``b`` were loaded only from different scopes: bodies of
        two skills that share a name, not an edit of one."""
        sa, sb = set(self.of(a)), set(self.of(b))
        return bool(sa and sb and not sa & sb)


def scope_of(directory: str | None, managed: set[str]) -> str | None:
    """The scope of one load from ``directory`` (see the module's docstring)."""
    if not directory:
        return None
    folder = normalized(directory)
    if folder in managed:
        return MANAGED
    return project_of(folder)


def skill_folders(conn: apsw.Connection, skill: str) -> Folders:
    """Every folder ``skill`` (under any of its names) was loaded from, by version and scope."""
    names = names_of(conn, skill)
    marks = ", ".join("?" for _ in names)
    managed = {
        row[0]
        for row in conn.execute(
            f"SELECT folder FROM p_managed_folders WHERE skill IN ({marks})", names
        )
    }
    scopes: set[str] = set()
    by_version: dict[str, set[str]] = {}
    folders: dict[str, set[str]] = {}
    # Distinct pairs: a skill's thousands of loads come from a few folders and versions.
    for digest, directory in conn.execute(
        "SELECT DISTINCT json_extract(attributes, '$.\"skill.content_hash\"'),"
        " json_extract(attributes, '$.\"skill.directory\"') FROM p_spans"
        f" WHERE kind = 'SKILL' AND json_extract(attributes, '$.\"skill.name\"') IN ({marks})",
        names,
    ):
        scope = scope_of(directory if isinstance(directory, str) else None, managed)
        if scope is None:
            continue
        scopes.add(scope)
        if isinstance(digest, str):
            by_version.setdefault(digest, set()).add(scope)
            folders.setdefault(digest, set()).add(normalized(str(directory)))
    return Folders(
        scopes=sorted(scopes),
        by_version={k: sorted(v) for k, v in sorted(by_version.items())},
        folders={k: sorted(v) for k, v in sorted(folders.items())},
    )


def every_skills_scopes(conn: apsw.Connection, aliases: dict[str, str]) -> dict[str, list[str]]:
    """Per skill (an alias folded into the skill it names), every scope its loads came from:
    ``skills`` reads them all in one pass."""
    managed: dict[str, set[str]] = {}
    for skill, folder in conn.execute("SELECT skill, folder FROM p_managed_folders"):
        managed.setdefault(aliases.get(skill, skill), set()).add(folder)
    out: dict[str, set[str]] = {}
    for name, directory in conn.execute(
        "SELECT json_extract(attributes, '$.\"skill.name\"'),"
        " json_extract(attributes, '$.\"skill.directory\"') FROM p_spans WHERE kind = 'SKILL'"
        " AND json_extract(attributes, '$.\"skill.directory\"') IS NOT NULL",
    ):
        if not isinstance(name, str) or not isinstance(directory, str):
            continue
        skill = aliases.get(name, name)
        scope = scope_of(directory, managed.get(skill, set()))
        if scope is not None:
            out.setdefault(skill, set()).add(scope)
    return {k: sorted(v) for k, v in out.items()}


def scope_text(scope: str) -> str:
    """A scope as a user reads it: the project (or home) folder, or the managed skill."""
    return "the managed skill's files" if scope == MANAGED else scope


def shared_line(skill: str, scopes: list[str]) -> str:
    """What a reader of a name that covers several projects' skills must know first."""
    return (
        f"{skill} names {len(scopes)} different skills, loaded from the skill folders of"
        f" {', '.join(scope_text(s) for s in scopes)}: their bodies are not versions of one"
        " skill and are never compared as an edit"
    )


__all__ = [
    "MANAGED",
    "Folders",
    "every_skills_scopes",
    "normalized",
    "project_of",
    "scope_of",
    "scope_text",
    "shared_line",
    "skill_folder",
    "skill_folders",
]
