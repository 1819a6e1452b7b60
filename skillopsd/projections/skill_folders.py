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
  session ran in); a git worktree's ``<root>`` (``<repo>/.worktrees/<x>``,
  ``<repo>/.claude/worktrees/<x>``, ``<repo>.worktrees/<x>``, ``<repo>__worktrees/<x>``) is its
  repository ``<repo>``;
- a plugin's folder (``~/.claude/plugins/cache/<marketplace>/<plugin>/<version>/skills/<name>``,
  ``…/plugins/marketplaces/<marketplace>/plugins/<plugin>/skills/<name>``), or, with no such
  folder recorded, a plugin-qualified name (``<plugin>:<name>``): the plugin, whatever its
  version, home or marketplace (a plugin's ``brainstorming`` is not the project's own
  ``brainstorming``, reviewer G8, while the plugin's next release is its next version);
- anything else (no folder recorded, a folder of no known layout): no scope, which never
  splits a name.

Paths are compared as written (``\\`` read as ``/``, ``.``/``..``/repeated and trailing
slashes collapsed, Windows paths case-folded): the log holds no file system, so one project
reached through two paths (a symbolic link) counts as two.
"""

from __future__ import annotations

import posixpath
import re

import apsw
import msgspec

from .skill_aliases import names_of, plain_name

MANAGED = "managed"  # the scope of every load from a managed skill's own folders
_AGENT_DIRS = ("agents", "claude", "codex", "copilot", "gemini", "github")
_PROJECT_SKILL = re.compile(
    r"\A(?P<root>.*)/\.(?:" + "|".join(_AGENT_DIRS) + r")/skills/[^/]+\Z", re.IGNORECASE
)
# A plugin's skill folder (Claude Code's layouts): the path below ``plugins/`` names the plugin.
_PLUGIN_SKILL = re.compile(
    r"/\.(?:" + "|".join(_AGENT_DIRS) + r")/plugins/(?P<below>.+)/skills/[^/]+\Z", re.IGNORECASE
)
# A git worktree's checkout, in the layouts that name themselves one (H5):
# ``<repo>/.worktrees/<x>``, Claude Code's ``<repo>/.claude/worktrees/<x>``, and the sibling
# folders ``<repo>.worktrees/<x>`` and ``<repo>__worktrees/<x>``. Its skills are the
# repository's: an edit tried on a branch is a version of the checkout's skill. Any other
# worktree folder (``<repo>-wt/<x>``) is a folder like any other: the log holds no ``.git`` file
# to say which repository it checks out (and projections never read the disk).
_WORKTREE = re.compile(
    r"\A(?P<repo>.*[^/])(?:/\.worktrees|/\.claude/worktrees|\.worktrees|__worktrees)"
    r"/[^/]+(?P<below>/.*)?\Z",
    re.IGNORECASE,
)
PLUGIN = "plugin:"  # a plugin's scope: this prefix and the plugin's name
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
    the project of a project-level skill (the repository, for a worktree folder of a layout
    ``_WORKTREE`` knows), the home of a user-level one; None otherwise."""
    found = _PROJECT_SKILL.match(normalized(directory))
    if found is None:
        return None
    root = found.group("root") or "/"
    worktree = _WORKTREE.match(root)
    # A nested project in a worktree (``<x>/svc``) is that project in the repository's checkout.
    return worktree.group("repo") + (worktree.group("below") or "") if worktree else root


def plugin_of(directory: str) -> str | None:
    """The plugin whose folder holds the skill folder ``directory`` (its name, without the
    version or marketplace the cache path carries); None when it is no plugin's folder."""
    found = _PLUGIN_SKILL.search(normalized(directory))
    if found is None:
        return None
    parts = found.group("below").split("/")
    if parts[0] == "cache" and len(parts) >= 3:
        return parts[2]  # cache/<marketplace>/<plugin>/<version>
    return parts[-1] or None  # marketplaces/<marketplace>/plugins/<plugin>, or the marketplace


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


def scope_of(directory: str | None, managed: set[str], name: str | None = None) -> str | None:
    """The scope of one load of the skill named ``name`` from ``directory`` (see the module's
    docstring)."""
    if directory:
        folder = normalized(directory)
        if folder in managed:
            return MANAGED
        project = project_of(folder)
        if project is not None:
            return project
        plugin = plugin_of(folder)
        if plugin is not None:
            return PLUGIN + plugin
    qualified = plain_name(name) if name else None
    if name and qualified is not None:
        return PLUGIN + name.partition(":")[0].strip()
    return None


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
    # Distinct rows: a skill's thousands of loads come from a few folders, names and versions.
    for digest, directory, name in conn.execute(
        "SELECT DISTINCT json_extract(attributes, '$.\"skill.content_hash\"'),"
        " json_extract(attributes, '$.\"skill.directory\"'),"
        " json_extract(attributes, '$.\"skill.name\"') FROM p_spans"
        f" WHERE kind = 'SKILL' AND json_extract(attributes, '$.\"skill.name\"') IN ({marks})",
        names,
    ):
        folder = directory if isinstance(directory, str) else None
        scope = scope_of(folder, managed, name if isinstance(name, str) else None)
        if scope is None:
            continue
        scopes.add(scope)
        if isinstance(digest, str):
            by_version.setdefault(digest, set()).add(scope)
            if folder:
                folders.setdefault(digest, set()).add(normalized(folder))
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
        " json_extract(attributes, '$.\"skill.directory\"') FROM p_spans WHERE kind = 'SKILL'",
    ):
        if not isinstance(name, str):
            continue
        skill = aliases.get(name, name)
        folder = directory if isinstance(directory, str) else None
        scope = scope_of(folder, managed.get(skill, set()), name)
        if scope is not None:
            out.setdefault(skill, set()).add(scope)
    return {k: sorted(v) for k, v in out.items()}


def scope_text(scope: str) -> str:
    """A scope as a user reads it: the project (or home) folder, the plugin, or the managed
    skill."""
    if scope == MANAGED:
        return "the managed skill's files"
    if scope.startswith(PLUGIN):
        return f"the {scope.removeprefix(PLUGIN)} plugin"
    return scope


def shared_line(skill: str, scopes: list[str]) -> str:
    """What a reader of a name that covers several projects' (or plugins') skills must know
    first."""
    return (
        f"{skill} names {len(scopes)} different skills, loaded from the skill folders of"
        f" {', '.join(scope_text(s) for s in scopes)}: their bodies are not versions of one"
        " skill and are never compared as an edit"
    )


__all__ = [
    "MANAGED",
    "PLUGIN",
    "Folders",
    "every_skills_scopes",
    "normalized",
    "plugin_of",
    "project_of",
    "scope_of",
    "scope_text",
    "shared_line",
    "skill_folder",
    "skill_folders",
]
