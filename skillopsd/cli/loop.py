"""``skillopsctl loop install``: put the shipped evolve-skill where the agent loads user skills."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
import msgspec

from ..skills import EVOLVE_SKILL, shipped_skill
from ._app import UsageFailure, cli, json_option
from ._output import echo, emit_json


def user_skills_folder(agent: str, env: dict[str, str] | None = None) -> Path:
    """Where ``agent`` loads a user-level skill from.

    Claude Code: ``$CLAUDE_CONFIG_DIR/skills`` (default ``~/.claude/skills``). Codex:
    ``$HOME/.agents/skills`` (openai/codex, codex-rs/core-skills/src/loader.rs,
    ``skill_roots_from_layer_stack_inner``: the user-installed skills root; the older
    ``$CODEX_HOME/skills`` is kept there only for backward compatibility).
    """
    env = dict(os.environ) if env is None else env
    home = Path(env.get("HOME") or Path.home())
    if agent == "claude":
        config = env.get("CLAUDE_CONFIG_DIR")
        return (Path(config).expanduser() if config else home / ".claude") / "skills"
    return home / ".agents" / "skills"


class Installed(msgspec.Struct):
    agent: str
    path: str
    action: str  # installed | unchanged | replaced


@cli.group("loop")
def loop_group() -> None:
    """The evolve-skill loop (observe, edit, re-run, gate, pull request)."""


@loop_group.command("install")
@click.option(
    "--agent", type=click.Choice(["claude", "codex"]), default="claude", show_default=True
)
@click.option("--force", is_flag=True, help="Replace a different evolve-skill already there.")
@json_option
def install(agent: str, force: bool, as_json: bool) -> None:
    """Copy the shipped evolve-skill SKILL.md into the agent's user skills folder."""
    text = shipped_skill()
    target = user_skills_folder(agent) / EVOLVE_SKILL / "SKILL.md"
    action = "installed"
    if target.is_symlink() or target.exists():
        try:
            current = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            current = None
            if not force:
                raise UsageFailure(
                    f"{target}: cannot read the file there ({exc}); --force replaces it"
                ) from None
        if current == text:
            action = "unchanged"
        elif not force:
            raise click.ClickException(
                f"{target} exists and differs from the shipped evolve-skill; --force replaces it"
            )
        else:
            action = "replaced"
    if action != "unchanged":
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".SKILL.md.")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as exc:
            raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
    if as_json:
        emit_json(Installed(agent=agent, path=str(target), action=action))
        return
    echo(f"{action} {target}")
    if action != "unchanged":
        echo(
            f"start a new {agent} session and ask it to evolve a skill ('use evolve-skill on NAME')"
        )
