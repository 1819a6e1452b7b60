"""The CI recipe (examples/ci/github-actions.yml) passes actionlint, and holds the rules the
README promises: pinned actions and a hash-pinned install, no ``pull_request_target``, a
read-only token, secrets only in a job that runs for pull requests from this repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .test_loop import check_command_line

RECIPE = Path(__file__).parent.parent / "examples" / "ci" / "github-actions.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    assert Path(found).exists(), "actionlint is in the test extra: pip install -e '.[test]'"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_actionlint(), "-no-color", str(path)], capture_output=True, text=True, timeout=120
    )


def test_the_recipe_passes_actionlint() -> None:
    done = _lint(RECIPE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_is_live_it_catches_an_injection(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        RECIPE.read_text().replace(
            "skillopsctl --version", 'echo "${{ github.event.pull_request.title }}"'
        )
    )
    done = _lint(bad)
    assert done.returncode != 0 and "untrusted" in done.stdout


def test_the_recipe_keeps_its_security_promises() -> None:
    text = RECIPE.read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True
    assert set(triggers) == {"pull_request"}
    assert "pull_request_target" not in text.replace("never `pull_request_target`", "")
    assert workflow["permissions"] == {"contents": "read"}
    for use in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", use), f"{use} is not pinned by SHA"
    assert "--require-hashes" in text and not re.search(r"curl[^\n]*\|\s*(ba)?sh", text)
    for name, job in workflow["jobs"].items():
        job_text = yaml.safe_dump(job)
        if "secrets." in job_text:
            assert job.get("if") == (
                "github.event.pull_request.head.repo.full_name == github.repository"
            ), name
        for step in job["steps"]:
            for checkout in [step] if "checkout" in str(step.get("uses", "")) else []:
                assert checkout["with"]["persist-credentials"] is False
            # Values from the event reach shell lines only through env, never inline.
            assert "${{" not in str(step.get("run", "")), step


def _recipe_commands() -> list[str]:
    if not RECIPE.exists():  # collected from a copy of tests/ alone: the other tests fail
        return []
    joined = RECIPE.read_text().replace("\\\n", " ")
    return [
        line.split(">")[0].strip()
        for line in joined.splitlines()
        if line.strip().startswith("skillopsctl ") and not line.split()[1].startswith("-")
    ]


def test_the_recipe_replays() -> None:
    used = {" ".join(line.split()[1:3]) for line in _recipe_commands()}
    assert {"skill import", "skill add-challenger", "eval replay"} <= used


@pytest.mark.parametrize("line", _recipe_commands())
def test_every_command_line_in_the_recipe_exists(line: str) -> None:
    check_command_line(line)
