"""Skill bodies as transcripts show them, and the content hash that ties them to a version."""

from __future__ import annotations

import hashlib
import re

BASE_DIR_PREFIX = "Base directory for this skill:"
_ARGUMENTS_TRAILER = re.compile(r"\n{3,}ARGUMENTS:.*\Z", re.DOTALL)
_FRONTMATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)


def strip_frontmatter(body: str) -> str:
    """The SKILL.md body without its YAML frontmatter (Claude injects it without one)."""
    return _FRONTMATTER.sub("", body.replace("\r\n", "\n"), count=1)


def content_hash(body: str) -> str:
    """sha256 of a skill body: frontmatter stripped, ``\\r\\n`` → ``\\n``, whitespace trimmed."""
    text = strip_frontmatter(body).strip()
    return hashlib.sha256(text.encode()).hexdigest()


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
