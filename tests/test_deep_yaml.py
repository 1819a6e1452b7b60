"""YAML nested beyond what the parser recurses through is one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from skillopsd.evals.manifest import ManifestError, parse_manifest
from skillopsd.versions.store import frontmatter_name

from .conftest import ctl_command

_DEEP = "[" * 1200 + "]" * 1200


def test_a_deep_evals_yaml_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="nested too deep"):
        parse_manifest(f"version: 1\nx: {_DEEP}\n")


def test_a_deep_frontmatter_names_nothing() -> None:
    assert frontmatter_name(f"---\nname: deep\nx: {_DEEP}\n---\nbody\n") is None


def test_skill_import_of_a_deep_frontmatter_answers(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "SKILL.md").write_text(f"---\nname: deep\nx: {_DEEP}\n---\nbody\n")
    done = subprocess.run(
        [*ctl_command(), "skill", "import", "deep", "--from", str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=60,
    )
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
