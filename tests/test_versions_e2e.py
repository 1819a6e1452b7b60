"""The versioned store end to end: a real ``skillopsd`` following a temporary HOME, the real
``skillopsctl``, and real-shaped Claude Code transcripts that load whatever body the router
last wrote to the live SKILL.md.

The story: a session loads the skill before it is managed (an observed version); ``skill
import`` matches that body by hash; a challenger is added; every later session loads the live
file as it is then (challenger sessions succeed, champion sessions fail), the daemon records
each settled session as an execution, routes, rewrites the live files, and the decision rule
promotes the challenger; a hand edit of the live file becomes a version and is never
overwritten; a label changes one session's signal and a correction (not a duplicate) follows;
every routing recomputes; the store folder rebuilds byte for byte."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skillopsd.derive import session_id
from skillopsd.derive._skills import skill_content_hash, strip_frontmatter
from skillopsd.events import Database
from skillopsd.versions.materialize import next_pick
from skillopsd.versions.state import SkillState
from skillopsd.versions.store import read_state

from ._daemon import DaemonProcess, daemon_env, db_path
from ._skill_sessions import claude_session
from .conftest import console_script

pytestmark = pytest.mark.slow

V1 = "Tidy the imports.\n\n1. Sort them.\n2. Remove the unused ones."
V2 = "Tidy the imports.\n\n1. Run `ruff check --fix`.\n2. Run the tests before you answer."
EDIT = "Tidy the imports, by hand.\n\n1. Run `ruff check --fix --select I`."


def skill_text(body: str) -> str:
    return f"---\nname: tidy\ndescription: keep imports tidy\n---\n\n{body}\n"


class Story:
    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        self.env = daemon_env(self.home)
        self.live = self.home / ".claude" / "skills" / "tidy"
        self.project = self.home / "work" / "app" / ".claude" / "skills" / "tidy"
        self.sessions = 0

    def ctl(self, *args: str, code: int = 0) -> str:
        result = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        if code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
            return lines[0]
        return result.stdout

    def session(self, skill: str, directory: Path, text: str, *, fail: bool) -> str:
        """A Claude session loading ``text`` (a SKILL.md) from ``directory``; returns its id."""
        self.sessions += 1
        native = f"{self.sessions:08d}-0000-4000-8000-00000000000a"
        # Written aside and moved in whole: the daemon must never see a half-made story.
        staging = self.home.parent / "staging"
        path = claude_session(
            staging,
            session=native,
            skill=skill,
            skill_dir=directory,
            body=strip_frontmatter(text).strip(),
            prompt="Please tidy the imports of slug.py",
            tools=["Edit", "Bash"],
            final="Done." if not fail else "The tests still fail.",
            # Each session starts as it is written, as a real one does: only sessions that
            # started after the challenger joined count in its test.
            start=datetime.now(UTC),
        )
        if fail:
            records = [json.loads(line) for line in path.read_text().splitlines()]
            for record in records:
                if "-result-" not in str(record.get("uuid")):
                    continue  # only the calls after the skill loaded fail
                for block in record["message"]["content"]:
                    block["is_error"] = True
                    block["content"] = "Exit code 1\n2 failed"
                record["toolUseResult"] = "Error: Exit code 1\n2 failed"
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        target = self.home / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return session_id("claude", native)

    def state(self) -> SkillState:
        db = Database.open(db_path(self.home))
        try:
            return read_state(db, "tidy")
        finally:
            db.close()


def _live_version(story: Story, state: SkillState) -> str:
    digest = skill_content_hash((story.live / "SKILL.md").read_text())
    assert digest in state.versions, "the live file holds a body the store does not know"
    return digest


def _both_live(story: Story) -> str | None:
    """The version both live files hold (None while they differ)."""
    texts = {(d / "SKILL.md").read_text() for d in (story.live, story.project)}
    return skill_content_hash(texts.pop()) if len(texts) == 1 else None


def test_ab_story_through_daemon_and_cli(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.live.mkdir(parents=True)
    (story.live / "SKILL.md").write_text(skill_text(V1))
    legacy = story.home / ".claude" / "skills" / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "SKILL.md").write_text(skill_text("A legacy skill nobody manages."))
    legacy_bytes = (legacy / "SKILL.md").read_bytes()

    # Before the store knows it, a session loads v1: an observed version.
    story.session("tidy", story.live, skill_text(V1), fail=False)
    story.session("legacy", legacy, (legacy / "SKILL.md").read_text(), fail=False)
    subprocess.run([console_script("skillopsd"), "--once"], env=story.env, check=True, timeout=120)
    observed = story.state()
    assert [v.source for v in observed.versions.values()] == ["observed"]

    story.project.parent.mkdir(parents=True)  # the project's skills folder (tidy is created)
    out = story.ctl(
        "skill", "import", "tidy", "--from", str(story.live), "--live", str(story.project)
    )
    assert "champion v1" in out  # matched to the observed version by hash, no new tag
    assert (story.project / "SKILL.md").read_text() == skill_text(V1)
    story.ctl("policy", "set", "bandit", "min_per_arm=3", "promote_bar=0.95", "retire_bar=0.95")
    challenger = tmp_path / "SKILL.v2.md"
    challenger.write_text(skill_text(V2))
    out = story.ctl(
        "skill",
        "add-challenger",
        "tidy",
        str(challenger),
        "--author",
        "machine",
        "--confidence",
        "60",
    )
    assert "challenger v2" in out
    state = story.state()
    v1, v2 = (v.content_hash for v in state.by_tag())
    assert state.versions[v2].parent == v1 and state.versions[v2].confidence == 60

    daemon = DaemonProcess(
        story.home,
        "--derive-interval",
        "0",
        "--settle-seconds",
        "3600",  # settled by the agent's own end (last-prompt), not time
        env=story.env,
    )
    loaded: list[str] = []
    try:
        daemon.wait_for(lambda: db_path(story.home).exists(), 30)
        for _ in range(40):
            state = story.state()
            if state.champion == v2:
                break
            digest = _live_version(story, state)
            assert digest in (v1, v2)
            assert (story.project / "SKILL.md").read_text() == (story.live / "SKILL.md").read_text()
            sid = story.session(
                "tidy", story.live, (story.live / "SKILL.md").read_text(), fail=digest == v1
            )
            loaded.append(digest)
            daemon.wait_for(
                lambda sid=sid: (
                    f"session:{sid}" in story.state().executions
                    and story.state().routing is not None
                    and story.state().routing.position  # type: ignore[union-attr]
                    > story.state().executions[f"session:{sid}"].position
                ),
                60,
            )
            state = story.state()
            execution = state.executions[f"session:{sid}"]
            assert execution.version_hash == digest and execution.source == "verdict"
            assert execution.outcome == ("failure" if digest == v1 else "success")
            # The live files hold what the router picked next.
            daemon.wait_for(lambda: _both_live(story) == next_pick(story.state()))
        state = story.state()
        assert state.champion == v2, f"no promotion after {len(loaded)} sessions"
        assert {v1, v2} <= set(loaded), "both versions were routed to sessions"
        assert any(a != b for a, b in itertools.pairwise(loaded)), "the live file changed"

        # A hand edit of the live file: imported as a version, never overwritten.
        (story.live / "SKILL.md").write_text(skill_text(EDIT))
        daemon.signal(1)  # SIGHUP: rescan now (the store is synced at every rescan)
        daemon.wait_for(lambda: len(story.state().versions) == 3, 30)
        state = story.state()
        edited = state.by_tag()[-1]
        assert edited.source == "edited" and state.champion == edited.content_hash
        sid = story.session("tidy", story.live, skill_text(EDIT), fail=False)
        daemon.wait_for(lambda: f"session:{sid}" in story.state().executions, 60)
        daemon.wait_for(lambda: (story.project / "SKILL.md").read_text() == skill_text(EDIT))
        assert (story.live / "SKILL.md").read_text() == skill_text(EDIT)
    finally:
        daemon.stop()
    assert (legacy / "SKILL.md").read_bytes() == legacy_bytes  # unmanaged: never touched

    # A label outranks the verdict: one correction, no duplicate, the count unchanged.
    first_v2 = next(e for e in story.state().executions.values() if e.version_hash == v2)
    runs_before = story.state().stats(v2, None).executions
    story.ctl("annotate", first_v2.session_id, "--label", "bad", "--skill", "tidy")
    out = story.ctl("skill", "route", "tidy")
    assert "0 execution(s), 1 correction(s)" in out
    state = story.state()
    corrected = state.executions[f"session:{first_v2.session_id}"]
    assert (corrected.outcome, corrected.source) == ("failure", "label")
    assert state.stats(v2, None).executions == runs_before
    assert "0 execution(s)" not in story.ctl("skill", "route", "tidy")  # nothing more to say

    report = json.loads(story.ctl("skill", "versions", "tidy", "--json"))
    assert report["champion"] == "v3" and report["next"] == "v3" and report["challenger"] is None
    tags = {v["tag"]: v for v in report["versions"]}
    assert tags["v2"]["executions"] == runs_before and not tags["v2"]["retired"]
    assert tags["v1"]["executions"] + tags["v2"]["executions"] >= 6
    text = story.ctl("skill", "versions", "tidy")
    assert "champion" in text and "next v3" in text
    lineage: list[dict[str, Any]] = json.loads(story.ctl("lineage", "tidy", "--json"))
    kinds = [e["kind"] for e in lineage]
    assert {"managed", "challenger", "promotion", "version"} <= set(kinds)
    bandit = next(e for e in lineage if e["kind"] == "promotion" and e["author"] == "bandit")
    assert bandit["tag"] == "v2" and "P(challenger better)" in bandit["reason"]
    assert "routing decision(s) of tidy recompute exactly" in story.ctl(
        "skill", "verify-routing", "tidy"
    )
    legacy_report = json.loads(story.ctl("skill", "versions", "legacy", "--json"))
    assert legacy_report["managed"] is False and legacy_report["next"] is None

    # The store folder is a projection: deleted, it comes back byte for byte.
    store = db_path(story.home).parent / "skills" / "tidy"
    before = {p.name: p.read_bytes() for p in sorted(store.iterdir())}
    assert {"manifest.json", "SKILL.v1.md", "SKILL.v2.md", "SKILL.v3.md"} == set(before)
    manifest = json.loads(before["manifest.json"])
    assert manifest["champion"] == "v3" and manifest["versions"][1]["author"] == "machine"
    (store / "manifest.json").write_text('{"champion": "v1"}')  # disagrees with the log
    story.ctl("skill", "versions", "tidy")
    assert (store / "manifest.json").read_bytes() == before["manifest.json"]
    shutil.rmtree(store.parent)
    subprocess.run([console_script("skillopsd"), "--once"], env=story.env, check=True, timeout=120)
    assert {p.name: p.read_bytes() for p in sorted(store.iterdir())} == before

    # Bad input: one line, the right code, nothing stored harmed.
    assert "unknown version" in story.ctl(
        "skill", "record", "tidy", "--version", "v9", "--success", code=1
    )
    assert "not managed" in story.ctl("skill", "route", "nope", code=1)
    story.ctl("skill", "strategy", "tidy", "coin-flip", code=2)
    assert "already managed" in story.ctl(
        "skill", "import", "tidy", "--from", str(story.live), code=2
    )
    assert {p.name: p.read_bytes() for p in sorted(store.iterdir())} == before
