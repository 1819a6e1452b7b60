"""A skill name is at most 64 characters (Agent Skills' limit; it becomes a folder name)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import ctl_command


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [*ctl_command(), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_name_longer_than_64_is_refused_in_one_line(tmp_path: Path) -> None:
    for length, code in ((64, 0), (65, 2), (300, 2)):
        name = "a" * length
        folder = tmp_path / f"s{length}" / name[:200]
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: d\n---\nbody\n")
        done = _ctl(tmp_path, "skill", "import", "--name", name, "--from", str(folder))
        assert done.returncode == code, (length, done.stderr)
        if code:
            assert done.stderr.count("\n") == 1 and "at most 64" in done.stderr
            assert "Traceback" not in done.stderr
            listed = _ctl(tmp_path, "skill", "list", "--managed")
            assert name not in listed.stdout
