"""A managed skill never writes a masked secret over a user's file.

Found by a reviewer: skills are stored masked, as capture masks transcripts, and the store
wrote that masked text to the live SKILL.md files, so a skill holding a token or a URL with
a password was rewritten with ``[REDACTED:…]``: the project copy at import, the user's own
source at the next promote (the only copy of the secret, gone; the agent's instructions
broken). Import and add-challenger now refuse such a file, naming the lines; a hand edit
holding a secret is still recorded (sessions that load it count) but never written
anywhere else.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from skillopsd._redact import holds_mask, masked_lines

from .conftest import ctl_command

TOKEN = "ghp_Zq8vPL3kT7mN2xR5yW9bC4dF6gH1jK0aS3eU"
BODY = (
    "---\nname: gh\ndescription: d\n---\n"
    f"Use the bot token {TOKEN} with `gh auth login --with-token`.\n"
    "DB: postgres://app:Xy7Pq2Lm9Kd4@db.internal:5432/main\n"
)
CLEAN = "---\nname: gh\ndescription: d\n---\nUse the bot token from $GH_TOKEN.\n"


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [*ctl_command(), *args], capture_output=True, text=True, env=env, timeout=60
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_masked_lines_names_each_line_and_kind() -> None:
    assert masked_lines(CLEAN) == []
    found = masked_lines(BODY)
    assert [n for n, _ in found] == [5, 6]
    assert found[0][1] == "github"
    assert holds_mask("x [REDACTED:github] y") and holds_mask("[REDACTED]")
    assert not holds_mask("REDACTED") and not holds_mask(CLEAN)


def test_import_and_add_challenger_refuse_a_skill_holding_a_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = home / "sk" / "gh"
    source.mkdir(parents=True)
    (source / "SKILL.md").write_text(BODY)
    project = home / "proj" / ".claude" / "skills"
    project.mkdir(parents=True)

    done = _ctl(home, "skill", "import", "gh", "--from", str(source), "--live", str(project / "gh"))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "line 5 (github)" in lines[0] and "line 6" in lines[0], lines[0]
    assert (source / "SKILL.md").read_text() == BODY  # untouched
    assert not (project / "gh").exists()  # nothing written where the agent looks
    assert TOKEN not in _ctl(home, "log", "--json").stdout

    (source / "SKILL.md").write_text(CLEAN)
    done = _ctl(home, "skill", "import", "gh", "--from", str(source), "--live", str(project / "gh"))
    assert done.returncode == 0, done.stderr
    assert (project / "gh" / "SKILL.md").read_text() == CLEAN

    challenger = tmp_path / "gh2.md"
    challenger.write_text(BODY + "Also run tests first.\n")
    done = _ctl(home, "skill", "add-challenger", "gh", str(challenger))
    assert done.returncode != 0 and "line 5 (github)" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert challenger.read_text() == BODY + "Also run tests first.\n"
    assert (source / "SKILL.md").read_text() == CLEAN
    assert (project / "gh" / "SKILL.md").read_text() == CLEAN


def test_a_hand_edit_holding_a_secret_is_recorded_but_never_written_elsewhere(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    source = home / "sk" / "gh"
    source.mkdir(parents=True)
    (source / "SKILL.md").write_text(CLEAN)
    live = home / "proj" / ".claude" / "skills" / "gh"
    live.parent.mkdir(parents=True)
    assert (
        _ctl(home, "skill", "import", "gh", "--from", str(source), "--live", str(live)).returncode
        == 0
    )

    # The user pastes a token into their own source file (and it has stood still a while).
    (source / "SKILL.md").write_text(BODY)
    past = time.time() - 60
    os.utime(source / "SKILL.md", (past, past))
    done = _ctl(home, "skill", "route", "gh")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{live / 'SKILL.md'} left as it is, not v2" in done.stderr, done.stderr
    assert (source / "SKILL.md").read_text() == BODY  # the user's file, as they wrote it
    assert (live / "SKILL.md").read_text() == CLEAN  # never the masked text
    versions = _ctl(home, "skill", "versions", "gh").stdout
    assert "v2" in versions  # the edit is a version: sessions that load it are counted

    # Rolling back and forth never puts a mask into either file, and never overwrites the
    # file holding the secret (the store could never give it back).
    for _ in range(2):
        for ref in ("v1", "v2"):
            done = _ctl(home, "promote", "gh", "--to", ref, "--force-no-eval", "--reason", "t")
            assert "Traceback" not in done.stderr, done.stderr
            assert (source / "SKILL.md").read_text() == BODY, ref
            assert (live / "SKILL.md").read_text() == CLEAN, ref
