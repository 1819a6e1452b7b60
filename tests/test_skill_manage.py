"""Skill management through the real CLI (and a real daemon for the watch): import refuses a
name agents do not load the skill by and a live path another managed skill owns; add-live
refuses a missing folder; remove-live and unmanage; skill list --managed shows each live
path and the version it holds; a hand edit of a live file is noticed within 2 s."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ._daemon import DaemonProcess, daemon_env, db_path
from .conftest import console_script

pytestmark = pytest.mark.slow


class Env:
    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        self.env = daemon_env(self.home)
        self.skills = self.home / ".claude" / "skills"

    def skill(self, folder: str, name: str | None, body: str = "Review pull requests.") -> Path:
        d = self.skills / folder
        d.mkdir(parents=True, exist_ok=True)
        front = f"---\nname: {name}\ndescription: x\n---\n\n" if name else ""
        (d / "SKILL.md").write_text(f"{front}{body}\n")
        return d

    def ctl(self, *args: str, code: int = 0) -> str:
        r = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == code, (args, r.stdout, r.stderr)
        if code:
            assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
            return r.stderr
        return r.stdout

    def managed(self) -> list[dict[str, object]]:
        return json.loads(self.ctl("skill", "list", "--managed", "--json"))  # type: ignore[no-any-return]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_import_refuses_a_name_agents_do_not_load_it_by(env: Env) -> None:
    folder = env.skill("github-pr-review", "github-pr-review")
    err = env.ctl("skill", "import", "review", "--from", str(folder), code=2)
    assert "agents load this skill as 'github-pr-review', not 'review'" in err
    assert "--name review" in err
    assert env.managed() == []
    # The folder's name or the frontmatter name both count; no NAME takes the frontmatter's.
    other = env.skill("pr-folder", "pr-frontmatter")
    env.ctl("skill", "import", "pr-folder", "--from", str(other))
    plain = env.skill("plain", None)
    env.ctl("skill", "import", "--from", str(plain))
    env.ctl("skill", "import", "--from", str(folder))
    assert sorted(m["skill"] for m in env.managed()) == ["github-pr-review", "plain", "pr-folder"]
    # --name overrides, on purpose; two different names is a usage error.
    renamed = env.skill("x-folder", "x-front")
    env.ctl("skill", "import", "--from", str(renamed), "--name", "x-chosen")
    assert "x-chosen" in [m["skill"] for m in env.managed()]
    err = env.ctl("skill", "import", "a", "--from", str(renamed), "--name", "b", code=2)
    assert "two names" in err


def test_two_managed_skills_never_share_a_live_file(env: Env) -> None:
    folder = env.skill("github-pr-review", "github-pr-review")
    env.ctl("skill", "import", "--from", str(folder))
    err = env.ctl("skill", "import", "--from", str(folder), "--name", "review", code=2)
    assert "is a live path of managed skill 'github-pr-review'" in err
    other = env.skill("other", "other")
    env.ctl("skill", "import", "--from", str(other))
    err = env.ctl("skill", "add-live", "other", str(folder), code=2)
    assert "live path of managed skill 'github-pr-review'" in err
    # The same path given as the SKILL.md itself is the same file.
    err = env.ctl("skill", "add-live", "other", str(folder / "SKILL.md"), code=2)
    assert "live path of managed skill" in err
    assert {m["skill"]: len(m["live"]) for m in env.managed()} == {  # type: ignore[arg-type]
        "github-pr-review": 1,
        "other": 1,
    }


def test_a_live_file_reached_another_way_is_still_taken(env: Env, tmp_path: Path) -> None:
    """F22: the same file through a symlinked project, a trailing slash, ``..``, a symlink to
    the SKILL.md itself or a bind-like second name (hard-linked file) is refused as the plain
    path is; a different file in the same linked folder is not."""
    a, b = env.skill("a", "a", "Skill A."), env.skill("b", "b", "Skill B.")
    p1 = tmp_path / "p1"
    (p1 / ".claude" / "skills").mkdir(parents=True)
    p2 = tmp_path / "p2"
    p2.symlink_to(p1)
    env.ctl("skill", "import", "a", "--from", str(a), "--live", str(p1 / ".claude/skills/shared"))
    taken = [
        str(p2 / ".claude/skills/shared"),
        str(p2 / ".claude/skills/shared") + "/",
        str(p2 / ".claude/skills/shared/SKILL.md"),
        str(p1 / ".claude/skills/../skills/shared"),
        str(tmp_path / "p2" / ".claude" / ".." / ".claude" / "skills" / "shared"),
    ]
    for path in taken:
        err = env.ctl("skill", "import", "b", "--from", str(b), "--live", path, code=2)
        assert "is a live path of managed skill 'a'" in err, (path, err)
        assert "the same file as" in err or path.rstrip("/").endswith("p1/.claude/skills/shared")
    # The file itself linked from another folder (a symlink or a hard link to SKILL.md).
    (tmp_path / "q" / ".claude" / "skills" / "via").mkdir(parents=True)
    (tmp_path / "q" / ".claude" / "skills" / "via" / "SKILL.md").symlink_to(
        p1 / ".claude/skills/shared/SKILL.md"
    )
    (tmp_path / "r" / ".claude" / "skills" / "hard").mkdir(parents=True)
    (tmp_path / "r" / ".claude" / "skills" / "hard" / "SKILL.md").hardlink_to(
        p1 / ".claude/skills/shared/SKILL.md"
    )
    for path in ("q/.claude/skills/via", "r/.claude/skills/hard"):
        err = env.ctl(
            "skill", "import", "b", "--from", str(b), "--live", str(tmp_path / path), code=2
        )
        assert "the same file as" in err, err
    # The import source itself may not be another skill's live file either.
    err = env.ctl(
        "skill", "import", "b", "--from", str(p2 / ".claude/skills/shared"), "--name", "b", code=2
    )
    assert "live path of managed skill 'a'" in err
    assert [m["skill"] for m in env.managed()] == ["a"]
    # Another skill folder in the linked project is another file: allowed, through either name.
    env.ctl("skill", "import", "b", "--from", str(b), "--live", str(p2 / ".claude/skills/other"))
    env.ctl("skill", "add-live", "b", str(p1 / ".claude/skills/third"))
    err = env.ctl("skill", "add-live", "a", str(p1 / ".claude/skills/other"), code=2)
    assert "live path of managed skill 'b'" in err and "the same file as" in err


def test_add_live_refuses_a_missing_parent(env: Env) -> None:
    folder = env.skill("s", "s")
    env.ctl("skill", "import", "--from", str(folder))
    typo = env.home / "porj" / ".claude" / "skills" / "s"
    err = env.ctl("skill", "add-live", "s", str(typo), code=2)
    assert f"folder {typo.parent} does not exist" in err
    assert not typo.parent.exists()
    err = env.ctl(
        "skill", "import", "--from", str(folder), "--name", "u", "--live", str(typo), code=2
    )
    assert "does not exist" in err
    # The skill's own folder may be new: it is created in a folder that exists.
    skills = env.home / "proj" / ".claude" / "skills"
    skills.mkdir(parents=True)
    env.ctl("skill", "add-live", "s", str(skills / "s"))
    assert (skills / "s" / "SKILL.md").read_text() == (folder / "SKILL.md").read_text()


def test_list_shows_each_live_path_and_what_it_holds(env: Env) -> None:
    folder = env.skill("s", "s")
    project = env.home / "proj" / "s"
    project.mkdir(parents=True)
    env.ctl("skill", "import", "--from", str(folder), "--live", str(project))
    (m,) = env.managed()
    assert m["champion"] == "v1"
    assert {x["path"]: x["holds"] for x in m["live"]} == {  # type: ignore[union-attr]
        str(folder / "SKILL.md"): "v1",
        str(project / "SKILL.md"): "v1",
    }
    (project / "SKILL.md").write_text("---\nname: s\n---\n\nA hand edit.\n")
    (folder / "SKILL.md").unlink()
    (m,) = env.managed()
    assert {x["path"]: x["holds"] for x in m["live"]} == {  # type: ignore[union-attr]
        str(folder / "SKILL.md"): "missing",
        str(project / "SKILL.md"): "a hand edit not yet recorded",
    }
    text = env.ctl("skill", "list")
    assert "holds now" in text and "missing" in text


def test_remove_live_and_unmanage(env: Env) -> None:
    folder = env.skill("s", "s")
    project = env.home / "proj" / "s"
    project.mkdir(parents=True)
    env.ctl("skill", "import", "--from", str(folder), "--live", str(project))
    out = env.ctl("skill", "remove-live", "s", str(project))
    assert "no longer written" in out
    (m,) = env.managed()
    assert [x["path"] for x in m["live"]] == [str(folder / "SKILL.md")]  # type: ignore[union-attr]
    err = env.ctl("skill", "remove-live", "s", str(project), code=2)
    assert "is not a live path of s" in err
    err = env.ctl("skill", "remove-live", "s", str(folder), code=2)
    assert "skill unmanage s" in err
    before = (folder / "SKILL.md").read_text()
    out = env.ctl("skill", "unmanage", "s", "--reason", "moved to a plugin")
    assert "no longer managed" in out and str(folder / "SKILL.md") in out
    assert env.managed() == [] and (folder / "SKILL.md").read_text() == before
    listed = json.loads(env.ctl("skill", "list", "--json"))
    assert [(m["skill"], m["managed"]) for m in listed] == [("s", False)]
    kinds = [e["kind"] for e in json.loads(env.ctl("lineage", "s", "--json"))]
    assert kinds[:2] == ["unmanaged", "live_removed"]
    env.ctl("skill", "unmanage", "s", code=1)
    # The path is free again for another skill, and s can be managed again.
    env.ctl("skill", "import", "--from", str(folder), "--name", "t")
    env.ctl("skill", "unmanage", "t")
    env.ctl("skill", "import", "--from", str(folder))
    assert [m["skill"] for m in env.managed()] == ["s"]


def test_a_hand_edit_of_a_live_file_is_noticed_within_two_seconds(env: Env) -> None:
    folder = env.skill("s", "s", "First body.")
    daemon = DaemonProcess(env.home, "--settle-seconds", "3600")
    try:
        daemon.wait_for(lambda: db_path(env.home).exists(), timeout=30)
        daemon.wait_for(lambda: "following" in daemon.logs(), timeout=60)
        # Imported while the daemon runs: it starts watching the new live file by itself.
        env.ctl("skill", "import", "--from", str(folder))
        time.sleep(1.5)  # the follower's look at the managed files (every second)

        def versions() -> list[str]:
            data = json.loads(env.ctl("skill", "versions", "s", "--json"))
            return [v["tag"] for v in data["versions"]]

        assert versions() == ["v1"]
        (folder / "SKILL.md").write_text("---\nname: s\n---\n\nSecond body, by hand.\n")
        edited = time.monotonic()
        daemon.wait_for(lambda: versions() == ["v1", "v2"], timeout=10, interval=0.1)
        assert time.monotonic() - edited < 2.0, daemon.logs()[-3000:]
        assert "live skill file changed" in daemon.logs()
        # An editor's save-by-rename is noticed too.
        tmp = folder / ".SKILL.md.swp"
        tmp.write_text("---\nname: s\n---\n\nThird body.\n")
        tmp.rename(folder / "SKILL.md")
        edited = time.monotonic()
        daemon.wait_for(lambda: versions() == ["v1", "v2", "v3"], timeout=10, interval=0.1)
        assert time.monotonic() - edited < 2.0
    finally:
        assert daemon.stop() == 0


def test_a_live_file_emptied_a_moment_ago_is_not_written_over(env: Env) -> None:
    """An editor's save truncates the file, then writes: a sync between the two must not put
    the routed body in its place (the rename would send the rest of the save to the old file,
    and the hand edit would be lost). The daemon lost one this way under load."""
    folder = env.skill("s", "s", "First body.")
    env.ctl("skill", "import", "--from", str(folder))
    live = folder / "SKILL.md"
    live.write_text("")  # truncated: the save's text is still to come
    out = env.ctl("skill", "route", "s")
    assert f"{live} changed moments ago" in out
    assert live.read_text() == ""
    # The rest of the save arrives in the same file: it is the user's, and becomes v2.
    live.write_text("---\nname: s\ndescription: x\n---\n\nSecond body, by hand.\n")
    past = time.time() - 60
    os.utime(live, (past, past))
    env.ctl("skill", "route", "s")
    assert "Second body, by hand." in live.read_text()
    tags = [v["tag"] for v in json.loads(env.ctl("skill", "versions", "s", "--json"))["versions"]]
    assert tags == ["v1", "v2"]
    # A file left empty (not a save in progress) is given the routed body again.
    live.write_text("")
    os.utime(live, (past, past))
    env.ctl("skill", "route", "s")
    assert "Second body, by hand." in live.read_text()
