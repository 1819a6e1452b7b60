"""Writing a user's live SKILL.md keeps the file's mode; skillops' own store stays 0600.

Found by a reviewer: import --live, a route or a promote rewrote the user's SKILL.md (and
the one it was imported from) as 0600, whatever it was, so a skills folder shared with
another account stopped being readable by that agent.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from .conftest import ctl_command


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ctl(home: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [*ctl_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),  # a user's usual umask
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_live_files_keep_their_mode_and_new_ones_follow_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = home / "sk" / "rev"
    source.mkdir(parents=True)
    (source / "SKILL.md").write_text("---\nname: rev\ndescription: r\n---\nReview it.\n")
    (source / "SKILL.md").chmod(0o640)
    live = home / "proj" / ".claude" / "skills" / "rev"
    live.parent.mkdir(parents=True)
    _ctl(home, "skill", "import", "rev", "--from", str(source), "--live", str(live))
    assert _mode(source / "SKILL.md") == 0o640
    assert _mode(live / "SKILL.md") == 0o644  # new: what umask 022 gives

    challenger = tmp_path / "rev2.md"
    challenger.write_text("---\nname: rev\ndescription: r\n---\nReview it well.\n")
    _ctl(home, "skill", "add-challenger", "rev", str(challenger))
    _ctl(home, "promote", "rev", "--to", "v2", "--force-no-eval", "--reason", "test")
    assert "Review it well." in (live / "SKILL.md").read_text()
    assert _mode(source / "SKILL.md") == 0o640
    assert _mode(live / "SKILL.md") == 0o644

    store = home / ".local" / "share" / "skillops" / "skills" / "rev"
    written = sorted(store.iterdir())
    assert written and all(_mode(p) == 0o600 for p in written), [
        (p.name, oct(_mode(p))) for p in written
    ]
