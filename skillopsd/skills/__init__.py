"""Skills skillops ships; `skillopsctl loop install` puts them in an agent's skills folder."""

from __future__ import annotations

from importlib.resources import files

EVOLVE_SKILL = "evolve-skill"


def shipped_skill(name: str = EVOLVE_SKILL) -> str:
    """The SKILL.md text of a shipped skill, as packaged."""
    return (files(__package__) / name / "SKILL.md").read_text(encoding="utf-8")
