"""How each agent is run headless and where it loads a project skill from."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import msgspec


class AgentSpec(msgspec.Struct, frozen=True):
    """An agent's default headless command and its project-skill folder (relative to cwd)."""

    name: str
    command: str
    skills_folder: str


AGENTS: dict[str, AgentSpec] = {
    # Claude Code loads project skills from <cwd>/.claude/skills/NAME/SKILL.md.
    "claude": AgentSpec(
        "claude", "claude -p {prompt} --output-format stream-json --verbose", ".claude/skills"
    ),
    # Codex scans `<dir>/.agents/skills` for every dir from the project root down to the cwd
    # (openai/codex, codex-rs/core-skills/src/loader.rs, `repo_agents_skill_roots`, commit
    # c9d127cf06ca42e1fd51a4f148b3c9ae086f5ae4); the scratch folder is its own project root.
    "codex": AgentSpec("codex", "codex exec --json {prompt}", ".agents/skills"),
}

PLACEHOLDERS = ("{prompt}", "{workdir}")


class TemplateError(ValueError):
    """An ``--agent-command`` that cannot be run: one line saying why."""


def check_template(template: str) -> list[str]:
    """The template split as a shell would (no shell runs it); :class:`TemplateError` if bad."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise TemplateError(f"--agent-command {template!r}: {exc}") from None
    if not words:
        raise TemplateError("--agent-command is empty")
    if not any("{prompt}" in w for w in words):
        raise TemplateError(
            f"--agent-command {template!r} never passes the task: put {{prompt}} where the"
            " agent takes its prompt"
        )
    return words


def build_argv(template: str, prompt: str, workdir: Path) -> list[str]:
    """``template`` split with shlex, then ``{prompt}`` / ``{workdir}`` replaced inside each
    word, so a prompt with spaces, quotes or ``$(...)`` stays one literal argument."""
    words = check_template(template)
    return [w.replace("{workdir}", str(workdir)).replace("{prompt}", prompt) for w in words]


def folder_name(skill: str) -> str:
    """The skill's folder name: its name, with anything a path could be fooled by replaced.

    Names come from captured transcripts, which anyone can write: ``../x`` must never put a
    SKILL.md outside the scratch folder.
    """
    name = re.sub(r"[^A-Za-z0-9._:-]", "-", skill).strip(".") or "skill"
    return name[:100]


def skill_path(agent: str, workdir: Path, skill: str) -> Path:
    """Where ``agent`` run in ``workdir`` finds the project skill ``skill``."""
    return workdir / AGENTS[agent].skills_folder / folder_name(skill) / "SKILL.md"
