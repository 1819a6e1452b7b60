"""One skill under two names: a plugin-qualified name (``superpowers:brainstorming``) and its
plain form (``brainstorming``) are one skill when they loaded the same body.

Claude Code names a plugin's skill either way (the Skill tool takes both, a slash command
shows the qualified one), so without this one skill splits into two rows whose sessions and
versions each tell half the story. The names stay as recorded (spans, sessions, the
``skill:<name>`` streams and their tags are never rewritten): readers map an alias to its
skill here. The mapping is a function of the recorded versions alone (``p_skill_versions``,
every (name, body hash) a session loaded or the store recorded), so it is the same on every
rebuild and whatever order the sessions were captured in. A qualified name whose bodies the
plain form never loaded stays a skill of its own (another plugin's skill of the same name).
"""

from __future__ import annotations

import apsw


def plain_name(skill: str) -> str | None:
    """The plain form of a plugin-qualified name (``plugin:skill`` → ``skill``), else None."""
    plugin, sep, plain = skill.partition(":")
    return plain if sep and plugin.strip() and plain.strip() else None


def skill_aliases(conn: apsw.Connection) -> dict[str, str]:
    """Every alias and the skill it names (qualified name → plain name)."""
    bodies: dict[str, set[str]] = {}
    for skill, digest in conn.execute("SELECT skill, version_hash FROM p_skill_versions"):
        bodies.setdefault(skill, set()).add(digest)
    out: dict[str, str] = {}
    for skill, hashes in bodies.items():
        plain = plain_name(skill)
        if plain is not None and hashes & bodies.get(plain, set()):
            out[skill] = plain
    return out


def canonical_skill(conn: apsw.Connection, skill: str) -> str:
    """The skill ``skill`` names: itself, or the plain name it is an alias of."""
    return skill_aliases(conn).get(skill, skill)


def names_of(conn: apsw.Connection, skill: str) -> list[str]:
    """The skill ``skill`` names, then its aliases (sorted): every name it was recorded under."""
    aliases = skill_aliases(conn)
    canonical = aliases.get(skill, skill)
    return [canonical, *sorted(a for a, c in aliases.items() if c == canonical)]
