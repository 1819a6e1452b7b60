"""Two projects' skills that share a name are not versions of one skill (reviewer F15).

A project's own ``.claude/skills/deploy`` and another project's ``deploy`` are different
skills; a user-level skill (``~/.claude/skills``) and a managed skill (its import source and
live files, in any project) stay one. ``skills``, ``skill show``, ``skill versions``, ``skill
diff``, ``eval run`` and the promote gate say so, through the real ``skillopsd --once`` and
``skillopsctl``, and never read one project's body as an edit of the other's."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.projections.skill_folders import (
    MANAGED,
    PLUGIN,
    normalized,
    plugin_of,
    project_of,
    scope_of,
    skill_folder,
)

from ._skill_sessions import claude_session, skill_dir
from .conftest import console_script
from .test_skills_acceptance import Home

WEB = "Run `make deploy` for the web app."
INFRA = "Deploy the terraform stack with `terraform apply`."
EVALS = """version: 1
suites:
  - name: s
    cases:
      - name: ends well
        graders:
          - type: outcome
            expect: success
"""


# --- where a folder belongs (pure) ------------------------------------------------------


@pytest.mark.parametrize(
    ("directory", "project"),
    [
        ("/work/infra/.claude/skills/deploy", "/work/infra"),
        ("/work/infra/.claude/skills/deploy/", "/work/infra"),
        ("/work/infra//.claude/skills/deploy", "/work/infra"),
        ("/work/infra/./.claude/skills/deploy", "/work/infra"),
        ("/work/other/../infra/.claude/skills/deploy", "/work/infra"),
        ("/work/mono/svc/.codex/skills/deploy", "/work/mono/svc"),  # nested: its own project
        ("/work/mono/.github/skills/deploy", "/work/mono"),
        ("/work/mono/.gemini/skills/deploy", "/work/mono"),
        ("/work/mono/.agents/skills/deploy", "/work/mono"),
        ("/home/ann/.claude/skills/deploy", "/home/ann"),  # user-level: the home
        ("/home/ann/.copilot/skills/deploy", "/home/ann"),
        ("C:\\Users\\Ann\\Repo\\.github\\skills\\deploy", "c:/users/ann/repo"),
        ("c:/users/ann/repo/.GITHUB/skills/deploy/", "c:/users/ann/repo"),
        ("/.claude/skills/deploy", "/"),
        # A git worktree's skills are its repository's (H5), in the layouts that say so.
        ("/home/dev/app.worktrees/deploy-health/.claude/skills/deploy", "/home/dev/app"),
        ("/home/dev/app__worktrees/fix/.agents/skills/deploy", "/home/dev/app"),
        ("/home/dev/app/.worktrees/fix/.claude/skills/deploy", "/home/dev/app"),
        ("/home/dev/app/.claude/worktrees/fix/.codex/skills/deploy", "/home/dev/app"),
        ("/home/dev/app/.worktrees/fix/svc/.claude/skills/deploy", "/home/dev/app/svc"),
        ("C:\\Dev\\App.worktrees\\Fix\\.github\\skills\\deploy", "c:/dev/app"),
        ("/home/dev/app-wt/fix/.claude/skills/deploy", "/home/dev/app-wt/fix"),  # no sign
        ("/home/dev/.worktrees/.claude/skills/deploy", "/home/dev/.worktrees"),
        # A plugin's folder is the plugin's scope (plugin_of), never a project's.
        ("/home/ann/.claude/plugins/cache/mkt/plug/1.2.0/skills/deploy", None),
        ("/work/infra/skills/deploy", None),
        ("/work/infra/.claude/skills", None),
        ("/work/infra/.claude/skills/deploy/scripts", None),
        ("", None),
    ],
)
def test_the_project_a_skill_folder_belongs_to(directory: str, project: str | None) -> None:
    assert project_of(directory) == project


@pytest.mark.parametrize(
    ("directory", "name", "scope"),
    [
        # The cache carries the marketplace and the version: the plugin's next release (or
        # another machine's home) is the same plugin, so the same scope.
        (
            "/home/ann/.claude/plugins/cache/mkt/superpowers/5.0.7/skills/brainstorming",
            "x",
            "plugin:superpowers",
        ),
        (
            "/Users/bo/.claude/plugins/cache/official/superpowers/5.1.0/skills/brainstorming/",
            "x",
            "plugin:superpowers",
        ),
        (
            "/home/ann/.claude/plugins/marketplaces/mkt/plugins/review/skills/lint",
            "lint",
            "plugin:review",
        ),
        ("/home/ann/.claude/plugins/marketplaces/solo/skills/lint", "lint", "plugin:solo"),
        # No folder recorded: a plugin-qualified name still names its plugin.
        (None, "superpowers:brainstorming", "plugin:superpowers"),
        (None, "brainstorming", None),
        # A project's own folder wins over a qualified name (its folder says where it is).
        ("/work/p/.claude/skills/brainstorming", "superpowers:brainstorming", "/work/p"),
        ("/work/p/plugins/x/skills/y", "y", None),
    ],
)
def test_a_plugins_skill_is_a_scope_of_its_own(
    directory: str | None, name: str, scope: str | None
) -> None:
    assert scope_of(directory, set(), name) == scope
    if directory is not None and scope is not None and scope.startswith(PLUGIN):
        assert plugin_of(directory) == scope.removeprefix(PLUGIN)


def test_a_managed_skills_folders_are_one_scope_in_any_project() -> None:
    managed = {skill_folder("/p1/.claude/skills/m/SKILL.md"), skill_folder("/p2/.claude/skills/m")}
    assert scope_of("/p1/.claude/skills/m/", managed) == MANAGED
    assert scope_of("/p2/.claude/skills/m", managed) == MANAGED
    assert scope_of("/p3/.claude/skills/m", managed) == "/p3"
    assert scope_of(None, managed) is None


_segment = st.text(alphabet="abcXYZ09-_. ", min_size=1, max_size=8).filter(
    lambda s: s.strip(".") != "" and s.strip() == s
)


@given(
    root=st.lists(_segment, min_size=1, max_size=4),
    agent=st.sampled_from([".claude", ".codex", ".github", ".gemini", ".agents", ".copilot"]),
    name=_segment,
    slashes=st.integers(1, 3),
    trailing=st.booleans(),
)
def test_how_a_folder_is_written_does_not_change_its_project(
    root: list[str], agent: str, name: str, slashes: int, trailing: bool
) -> None:
    sep = "/" * slashes
    plain = "/" + "/".join([*root, agent, "skills", name])
    written = sep + sep.join([*root, agent, "skills", name]) + ("/" if trailing else "")
    assert project_of(written) == project_of(plain) == "/" + "/".join(root)
    assert normalized(normalized(written)) == normalized(written)
    windows = "C:\\" + "\\".join([*root, agent, "skills", name])
    assert project_of(windows) == ("c:/" + "/".join(root)).casefold()


# --- through the real CLI ----------------------------------------------------------------


class Projects(Home):
    """A HOME whose sessions load ``deploy`` from whichever folder each story names."""

    def load(self, folder: Path, body: str) -> str:
        skill_dir(folder.parent, folder.name, body)
        self.skills = folder.parent
        return self.session(folder.name, body, final="done", tools=["Read"])

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def two(tmp_path: Path) -> Projects:
    h = Projects(tmp_path)
    webapp = tmp_path / "work" / "webapp" / ".claude" / "skills" / "deploy"
    infra = tmp_path / "work" / "infra" / ".claude" / "skills" / "deploy"
    h.load(webapp, WEB)
    h.load(infra, INFRA)
    h.load(webapp, WEB)
    (webapp / "evals.yaml").write_text(EVALS)
    h.capture()
    return h


@pytest.mark.slow
def test_two_projects_deploy_are_not_one_skills_versions(two: Projects, tmp_path: Path) -> None:
    web, infra = str(tmp_path / "work" / "webapp"), str(tmp_path / "work" / "infra")
    listed = two.json("skills")
    assert [(s["skill"], s["projects"]) for s in listed] == [("deploy", sorted([web, infra]))]
    text = two.ctl("skills")
    assert "deploy*" in text and "deploy names 2 different skills" in text
    usage = two.ctl("usage", "monthly", "--by", "skill")
    assert "deploy*" in usage and "one row counts them all" in usage
    assert "*" not in two.ctl("usage", "monthly", "--by", "agent")

    report = two.json("skill", "show", "deploy")
    assert report["projects"] == sorted([web, infra])
    by_tag = {v["tag"]: v for v in report["versions"]}
    assert by_tag["v1"]["projects"] == [web] and by_tag["v2"]["projects"] == [infra]
    assert by_tag["v1"]["folders"] == [f"{web}/.claude/skills/deploy"]
    assert " vs " not in report["reading"], report["reading"]
    assert "not compared" in report["reading"]
    shown = two.ctl("skill", "show", "deploy")
    assert "deploy names 2 different skills" in shown and "loaded from" in shown
    assert "v2 vs v1" not in shown and "v1 vs v2" not in shown

    diff = two.run("skill", "diff", "deploy", "v1", "v2")
    assert diff.returncode == 0
    assert diff.stdout.splitlines()[0].endswith(f"{web}/.claude/skills/deploy")
    assert diff.stdout.splitlines()[1].endswith(f"{infra}/.claude/skills/deploy")
    assert "not an edit of one" in diff.stderr and diff.stderr.count("\n") == 1

    versions = two.json("skill", "versions", "deploy")
    assert {v["tag"]: v["projects"] for v in versions["versions"]} == {"v1": [web], "v2": [infra]}
    assert "loaded from" in two.ctl("skill", "versions", "deploy")

    graded = two.run("eval", "run", "deploy", "--skill-dir", f"{web}/.claude/skills/deploy")
    assert graded.returncode == 0, graded.stderr
    assert "deploy names 2 different skills" in graded.stderr

    # The gate never weighs the other project's body as a version of this one (v1 is the
    # web app's, whose run passed over 2 sessions; with min_sessions=2 it would clear).
    two.ctl("policy", "set", "gate", "min_sessions=2")
    refused = two.run("promote", "deploy", "--to", "v1")
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "the gate does not weigh one project's skill" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1
    gates = [e for e in two.json("lineage", "deploy") if e.get("kind") == "gate"]
    assert gates and gates[-1]["cleared"] is False and "different skills" in gates[-1]["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["app.worktrees/health", "app/.claude/worktrees/health"])
def test_an_edit_tried_in_a_worktree_is_the_next_version(tmp_path: Path, layout: str) -> None:
    """H5: the project's deploy, edited in a git worktree of the repository (a layout that
    names itself one), is v2 of the project's skill and compared with v1; a folder of no
    such layout (``app-wt/health``) stays a different skill."""
    h = Projects(tmp_path)
    app = tmp_path / "work" / "app"
    for folder, body in [(app, WEB), (app, WEB), (tmp_path / "work" / layout, INFRA)]:
        h.load(folder / ".claude" / "skills" / "deploy", body)
    h.capture()
    listed = h.json("skills")
    assert [(s["skill"], s["projects"]) for s in listed] == [("deploy", [str(app)])]
    assert "different skills" not in h.ctl("skills")
    report = h.json("skill", "show", "deploy")
    assert "v2 vs v1" in report["reading"], report["reading"]
    assert {v["tag"]: v["projects"] for v in report["versions"]} == {
        "v1": [str(app)],
        "v2": [str(app)],
    }
    versions = h.ctl("skill", "versions", "deploy")
    assert "different skills" not in versions and "v2" in versions

    h.load(tmp_path / "work" / "app-wt" / "health" / ".claude" / "skills" / "deploy", "Other.")
    h.capture()
    assert "deploy names 2 different skills" in h.ctl("skills")


@pytest.mark.slow
def test_one_folder_however_written_and_a_user_skill_stay_one_skill(tmp_path: Path) -> None:
    h = Projects(tmp_path)
    folder = tmp_path / "work" / "app" / ".claude" / "skills" / "deploy"
    user = h.home / ".claude" / "skills" / "lint"
    h.load(folder, WEB)
    skill_dir(folder.parent, "deploy", INFRA)  # the same project's skill, edited
    h.skills = Path(str(folder.parent) + "//")  # Claude wrote the folder with a doubled slash
    h.session("deploy", INFRA, final="done", tools=["Read"])
    h.load(user, "Lint it.")
    h.load(user, "Lint it, then format.")
    h.capture()
    for skill in ("deploy", "lint"):
        report = h.json("skill", "show", skill)
        assert len(report["projects"]) == 1, report["projects"]
        assert "v2 vs v1" in report["reading"], report["reading"]
        assert "different skills" not in h.ctl("skill", "show", skill)
        diff = h.run("skill", "diff", skill, "v1", "v2")
        assert diff.stderr == "" and diff.stdout.startswith(f"--- {skill} v1 (")
    assert all(len(s["projects"]) == 1 for s in h.json("skills"))
    assert "*" not in h.ctl("skills").splitlines()[1]


@pytest.mark.slow
def test_a_managed_skill_is_one_skill_across_its_live_folders(tmp_path: Path) -> None:
    h = Projects(tmp_path)
    source = skill_dir(tmp_path / "src", "deploy", WEB, EVALS)
    p1 = tmp_path / "p1" / ".claude" / "skills" / "deploy"
    p2 = tmp_path / "p2" / ".claude" / "skills" / "deploy"
    for live in (p1, p2):
        live.parent.mkdir(parents=True)
    h.ctl("skill", "import", "deploy", "--from", str(source), "--live", str(p1), "--live", str(p2))
    h.load(p1, WEB)
    h.load(p2, WEB + "\nThen tell the team.")  # a hand edit in the second project
    h.capture()
    report = h.json("skill", "show", "deploy")
    assert report["projects"] == [MANAGED]
    assert " vs " in report["reading"]
    # Another project's own deploy: now the name covers two skills.
    p3 = tmp_path / "p3" / ".claude" / "skills" / "deploy"
    h.load(p3, INFRA)
    h.capture()
    report = h.json("skill", "show", "deploy")
    assert report["projects"] == sorted([MANAGED, str(tmp_path / "p3")])
    theirs = next(v for v in report["versions"] if v["projects"] == [str(tmp_path / "p3")])
    refused = h.run("promote", "deploy", "--to", theirs["tag"])
    assert refused.returncode == 1 and "was loaded from" in refused.stderr, refused.stderr
    # The managed skill's own versions are still gated on their evidence alone.
    ours = h.run("promote", "deploy", "--to", "v1", "--dry-run")
    assert "does not weigh" not in ours.stdout + ours.stderr


@pytest.mark.slow
def test_a_plugins_skill_and_the_projects_own_of_one_name_are_two_skills(tmp_path: Path) -> None:
    """G8: the superpowers plugin's ``brainstorming`` (loaded as ``superpowers:brainstorming``
    and as ``brainstorming``) and a project's own ``brainstorming`` are not versions of one
    skill; a version is dated by its first load under any of its names (H6)."""
    h = Projects(tmp_path)
    plugin = h.home / ".claude/plugins/cache/mkt/superpowers/5.0.7/skills/brainstorming"
    project = tmp_path / "work" / "p" / ".claude" / "skills" / "brainstorming"
    stories = [
        ("superpowers:brainstorming", plugin, "Plugin body A."),  # day 1
        ("brainstorming", project, "Project body B."),  # day 2
        ("brainstorming", plugin, "Plugin body A."),  # day 3
    ]
    for n, (name, folder, body) in enumerate(stories, 1):
        skill_dir(folder.parent, folder.name, body)
        claude_session(
            h.home,
            session=f"{n:08d}-0000-4000-8000-000000000008",
            skill=name,
            skill_dir=folder,
            body=body,
            prompt="brainstorm",
            tools=["Read"],
            final="done",
            start=datetime(2026, 11, n, 10, tzinfo=UTC),
        )
    h.capture()
    scopes = sorted([str(tmp_path / "work" / "p"), "plugin:superpowers"])
    listed = h.json("skills")
    assert [(s["skill"], s["projects"]) for s in listed] == [("brainstorming", scopes)]
    text = h.ctl("skills")
    assert "brainstorming names 2 different skills" in text and "the superpowers plugin" in text

    report = h.json("skill", "show", "brainstorming")
    assert report["aliases"] == ["superpowers:brainstorming"]
    by_tag = {v["tag"]: v for v in report["versions"]}
    assert by_tag["v1"]["projects"] == [str(tmp_path / "work" / "p")]
    assert by_tag["v2"]["projects"] == ["plugin:superpowers"]
    assert " vs " not in report["reading"] and "not compared" in report["reading"]
    # H6: v2's body was first loaded under the alias on day 1; v1 is another skill (the
    # project's), so v2 dated before it is no edit back in time and needs no note.
    assert by_tag["v1"]["first_loaded"][:10] == "2026-11-02"
    assert by_tag["v2"]["first_loaded"][:10] == "2026-11-01"
    shown = h.ctl("skill", "show", "brainstorming")
    assert "v2 vs v1" not in shown and "the superpowers plugin" in shown
    assert "2026-11-01 10:00" in shown and "order they were captured" not in shown

    versions = h.json("skill", "versions", "brainstorming")
    dated = {v["tag"]: v["first_loaded"][:10] for v in versions["versions"]}
    assert dated == {"v1": "2026-11-02", "v2": "2026-11-01"}
    listed = h.ctl("skill", "versions", "brainstorming")
    assert "the superpowers pl" in listed and "order they were captured" not in listed

    diff = h.run("skill", "diff", "brainstorming", "v1", "v2")
    assert diff.returncode == 0
    assert "not an edit of one" in diff.stderr and diff.stderr.count("\n") == 1
    assert diff.stdout.splitlines()[1].endswith(str(plugin))


@pytest.mark.slow
def test_an_aliases_earlier_load_never_dates_one_skills_v2_before_its_v1(tmp_path: Path) -> None:
    """G8 kept beside H6: all three loads are the plugin's (one skill); the alias loaded body A
    on day 1, the plain name loaded B (v1) on day 2 and A (v2) on day 3. v2 is dated by its
    load under its own name, never before v1, while a body only the alias loaded earlier than
    any lower tag is dated by the alias's load."""
    h = Projects(tmp_path)
    plugin = h.home / ".claude/plugins/cache/mkt/superpowers/5.0.7/skills/brainstorming"
    stories = [
        ("superpowers:brainstorming", "Plugin body A."),  # day 1
        ("brainstorming", "Plugin body B."),  # day 2: v1
        ("brainstorming", "Plugin body A."),  # day 3: v2
        ("superpowers:brainstorming", "Plugin body C."),  # day 4
        ("brainstorming", "Plugin body C."),  # day 5: v3, first loaded on day 4
    ]
    for n, (name, body) in enumerate(stories, 1):
        skill_dir(plugin.parent, plugin.name, body)
        claude_session(
            h.home,
            session=f"{n:08d}-0000-4000-8000-00000000000a",
            skill=name,
            skill_dir=plugin,
            body=body,
            prompt="brainstorm",
            tools=["Read"],
            final="done",
            start=datetime(2026, 11, n, 10, tzinfo=UTC),
        )
    h.capture()
    want = {"v1": "2026-11-02", "v2": "2026-11-03", "v3": "2026-11-04"}
    report = h.json("skill", "show", "brainstorming")
    assert {v["tag"]: v["first_loaded"][:10] for v in report["versions"]} == want
    versions = h.json("skill", "versions", "brainstorming")
    assert {v["tag"]: v["first_loaded"][:10] for v in versions["versions"]} == want
    for command in (("skill", "show", "brainstorming"), ("skill", "versions", "brainstorming")):
        assert "order they were captured" not in h.ctl(*command)


@pytest.mark.slow
def test_a_body_captured_later_but_loaded_earlier_is_said_to_be(tmp_path: Path) -> None:
    """G8: tags count bodies in capture order; a backfilled older transcript gets the next
    tag although it was loaded first. The dates stay true, and a note says why v2 is dated
    before v1 (nothing says it when the order agrees)."""
    h = Projects(tmp_path)
    folder = tmp_path / "work" / "p" / ".claude" / "skills" / "tidy"
    for n, (day, body) in enumerate([(5, "Tidy it."), (1, "Tidy it, older.")], 1):
        skill_dir(folder.parent, folder.name, body)
        claude_session(
            h.home,
            session=f"{n:08d}-0000-4000-8000-000000000009",
            skill="tidy",
            skill_dir=folder,
            body=body,
            prompt="tidy",
            tools=["Read"],
            final="done",
            start=datetime(2026, 11, day, 10, tzinfo=UTC),
        )
        if n == 1:
            h.capture()
            for command in (("skill", "show", "tidy"), ("skill", "versions", "tidy")):
                assert "order they were captured" not in h.ctl(*command)
    h.capture()
    dated = {
        v["tag"]: v["first_loaded"][:10] for v in h.json("skill", "versions", "tidy")["versions"]
    }
    assert dated == {"v1": "2026-11-05", "v2": "2026-11-01"}
    for command in (("skill", "show", "tidy"), ("skill", "versions", "tidy")):
        text = " ".join(h.ctl(*command).split())
        assert "v2 (2026-11-01 10:00) before v1 (2026-11-05 10:00)" in text, text
        assert "in the order they were captured" in text
