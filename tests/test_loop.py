"""The shipped evolve-skill loop: ``loop install`` puts it where each agent loads user skills
and never overwrites a different file without ``--force``; every ``skillopsctl`` command line
the SKILL.md tells an agent to run exists, option by option, in this CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from skillopsd.cli._app import cli, load_commands
from skillopsd.skills import shipped_skill

from .conftest import console_script


def _ctl(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "CODEX_HOME")}
    full.update(HOME=str(home), **env)
    return subprocess.run(
        [console_script("skillopsctl"), *args], env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "where"),
    [
        ("claude", ".claude/skills/evolve-skill/SKILL.md"),
        ("codex", ".agents/skills/evolve-skill/SKILL.md"),
    ],
)
def test_install_is_idempotent_and_never_clobbers(tmp_path: Path, agent: str, where: str) -> None:
    target = tmp_path / where
    done = _ctl(tmp_path, "loop", "install", "--agent", agent, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"agent": agent, "path": str(target), "action": "installed"}
    assert target.read_text() == shipped_skill()
    again = _ctl(tmp_path, "loop", "install", "--agent", agent)
    assert again.returncode == 0 and again.stdout.startswith("unchanged ")
    target.write_text("my own evolve-skill\n")
    refused = _ctl(tmp_path, "loop", "install", "--agent", agent)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: {target} exists and differs from the shipped evolve-skill; --force replaces it"
    ]
    assert target.read_text() == "my own evolve-skill\n"
    forced = _ctl(tmp_path, "loop", "install", "--agent", agent, "--force")
    assert forced.returncode == 0 and forced.stdout.startswith("replaced ")
    assert target.read_text() == shipped_skill()
    assert [p.name for p in target.parent.iterdir()] == ["SKILL.md"]  # no temporary left


@pytest.mark.slow
def test_install_honours_claude_config_dir(tmp_path: Path) -> None:
    config = tmp_path / "conf"
    done = _ctl(tmp_path, "loop", "install", CLAUDE_CONFIG_DIR=str(config))
    assert done.returncode == 0, done.stderr
    assert (config / "skills" / "evolve-skill" / "SKILL.md").read_text() == shipped_skill()


def _command_lines() -> list[str]:
    text = shipped_skill()
    blocks = re.findall(r"```\n(.*?)```", text, re.DOTALL)
    return [
        line.strip()
        for b in blocks
        for line in b.splitlines()
        if line.strip().startswith("skillopsctl")
    ]


def test_the_loop_drives_only_the_cli_and_never_merges_or_promotes() -> None:
    lines = _command_lines()
    assert len(lines) >= 7
    used = {" ".join(shlex.split(line)[1:3]) for line in lines}
    for step in ("skill show", "skill evidence", "skill add-challenger", "eval replay", "eval run"):
        assert step in used, step
    promotes = [line for line in lines if line.startswith("skillopsctl promote")]
    assert promotes and all("--dry-run" in line for line in promotes)
    assert not any("--force-no-eval" in line for line in lines)
    assert "--author machine" in " ".join(lines)
    text = shipped_skill()
    assert "gh pr create" in text and "gh pr merge" not in text
    assert "loop install" not in " ".join(lines)


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_line_in_the_shipped_skill_exists(line: str) -> None:
    check_command_line(line)


def check_command_line(line: str) -> None:
    """``line`` (a ``skillopsctl ...`` command) names a real command and only its options."""
    load_commands()
    words = shlex.split(line)[1:]
    command: click.Command = cli
    path: list[str] = []
    ctx = click.Context(cli)
    while isinstance(command, click.Group) and words and words[0] in command.list_commands(ctx):
        path.append(words[0])
        sub = command.get_command(ctx, words.pop(0))
        assert sub is not None
        command = sub
    assert not isinstance(command, click.Group), f"{line}: {path} is a group, not a command"
    options = {o for p in command.params for o in p.opts if o.startswith("-")}
    for word in words:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{line}: no option {word} on {' '.join(path)}"
    done = subprocess.run(
        [console_script("skillopsctl"), *path, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
