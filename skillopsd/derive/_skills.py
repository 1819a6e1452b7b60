"""Skill bodies as transcripts show them, and the one normalization that ties a body to a version.

``normalize_skill_body`` is the only definition of "the same skill body": derivation applies it
to what an agent loaded (Claude's injection, Codex's read of SKILL.md) and the skill-version
store applies it to a SKILL.md on disk, so both sides hash alike.
"""

from __future__ import annotations

import hashlib
import re

from .._redact import redact_text

BASE_DIR_PREFIX = "Base directory for this skill:"
# Claude Code appends the arguments a skill was called with after two newlines (2.1.32–2.1.42)
# or three (other versions); a body of its own never ends in such a trailer.
_ARGUMENTS_TRAILER = re.compile(r"\n{2,}ARGUMENTS:.*\Z", re.DOTALL)
_FRONTMATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)


def strip_frontmatter(body: str) -> str:
    """The SKILL.md body without its YAML frontmatter (Claude injects it without one)."""
    return _FRONTMATTER.sub("", body.replace("\r\n", "\n"), count=1)


def normalize_skill_body(text: str) -> str:
    """A skill body as a version is identified by it.

    ``\\r\\n`` → ``\\n``, YAML frontmatter stripped, an ``ARGUMENTS:`` trailer stripped,
    surrounding whitespace trimmed, and secrets masked exactly as capture masks them. Masking
    is idempotent, so a captured (already masked) body and the raw file on disk agree.
    """
    body = strip_frontmatter(text.lstrip("\ufeff"))
    body = _ARGUMENTS_TRAILER.sub("", body).strip()
    return redact_text(body).strip()


def skill_content_hash(text: str) -> str:
    """sha256 (hex) of :func:`normalize_skill_body` of ``text``."""
    return hashlib.sha256(normalize_skill_body(text).encode()).hexdigest()


# The name the derivers have always imported.
content_hash = skill_content_hash


def injected_body(text: str) -> tuple[str, str] | None:
    """(directory, body) of Claude's isMeta skill injection, without an ARGUMENTS trailer."""
    if not text.startswith(BASE_DIR_PREFIX):
        return None
    head, sep, body = text.partition("\n\n")
    directory = head[len(BASE_DIR_PREFIX) :].strip()
    if not sep:
        body = ""
    return directory, _ARGUMENTS_TRAILER.sub("", body)


def loaded_body(text: str) -> tuple[str | None, str]:
    """(directory or None, body) of any skill body Claude injected after a Skill call.

    Skills from a folder come with the ``Base directory`` line; bundled and plugin skills
    are injected as the bare body.
    """
    injected = injected_body(text)
    if injected is not None:
        return injected
    return None, _ARGUMENTS_TRAILER.sub("", text)


def unsubstituted(text: str, body: str, arguments: str | None) -> str:
    """``body`` (loaded from ``text``) with the arguments a skill was called with put back as
    ``$ARGUMENTS``.

    A skill without a placeholder gets its arguments appended (the trailer, stripped above):
    its body is left as it is. Into one with a placeholder Claude Code writes what the user
    typed after ``/name`` (or the model passed as the Skill call's ``args``): kept so, every
    argument would be a new version of a skill nobody edited, and the user's words would be
    stored (and sent to a team server) as a skill body. Whole-word occurrences only, so an
    argument that is part of a longer word stays; positional ``$0``/``$1`` are not undone.
    """
    args = (arguments or "").strip()
    if not args or args not in body or _ARGUMENTS_TRAILER.search(text):
        return body
    pattern = re.compile(r"(?<![\w$])" + re.escape(args) + r"(?!\w)")
    return pattern.sub("$ARGUMENTS", body)


_SKILL_FILE = re.compile(r"[/\\]SKILL\.md\Z")
_ABSOLUTE = re.compile(r"\A(?:/|[A-Za-z]:[/\\]|\\\\)")


def skill_md_folder(path: str, base: str | None = None) -> str | None:
    """The folder of a ``…/NAME/SKILL.md`` an agent read, as an absolute path: a relative
    path is taken from ``base`` (the call's working folder, else the session's) when that is
    absolute; None when no absolute folder can be told (``~/…``, no base)."""
    folder = _SKILL_FILE.sub("", path.strip())
    if folder == path.strip() or not folder:
        return None
    if _ABSOLUTE.match(folder):
        return folder
    if base and _ABSOLUTE.match(base) and not folder.startswith("~"):
        sep = "\\" if "\\" in base and "/" not in base else "/"
        return base.rstrip("/\\") + sep + folder.removeprefix("./")
    return None
