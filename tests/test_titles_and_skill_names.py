"""Titles are the first line a reader would call the request; built-in slash commands are not
skills; a plugin's skill loaded as ``plugin:name`` and as ``name`` is one skill (issue 16, 7)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skillopsd.derive import SourceLines, derive_session
from skillopsd.derive._builtins import BUILTIN_COMMANDS, is_builtin
from skillopsd.derive._title import TITLE_LIMIT, title_line

from ._capture_helpers import as_lines, file_lines
from ._daemon import daemon_env
from ._skill_sessions import T0, claude_session
from .conftest import SHARED, console_script, run_ctl
from .test_derive_claude import _command, _meta, _turn

COPILOT = SHARED / "corpus" / "agents" / "copilot"


# --- titles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "title"),
    [
        ("[[ ## user_query ## ]]\n\nWhat is 2+2?", "What is 2+2?"),
        (
            "[[ ## user_query ## ]]\n\n@[System]:\nRespond with exactly PASS.\n\n@[User]:\nGo",
            "Respond with exactly PASS.",
        ),
        ("\n\n   \n  fix the login bug  \n", "fix the login bug"),
        (
            "<system-reminder>\nAs you answer, use the tools.\n</system-reminder>\nship it",
            "ship it",
        ),
        ("<user_query>\n  rename the flag\n</user_query>", "rename the flag"),
        ("<command-name>/deploy</command-name>\n<command-args>prod</command-args>", "/deploy"),
        ("---\n# Refactor the parser\nsteps…", "Refactor the parser"),
        ("```python\nprint(1)\n```", "print(1)"),
        ("Use List<String> in Foo", "Use List<String> in Foo"),
        ("User: please review", "User: please review"),
        ("{{ input }}\nsummarise the log", "summarise the log"),
        ("<environment_context>\n  <cwd>/w</cwd>\n</environment_context>", None),
        ("[[ ## user_query ## ]]\n\n", None),
        ("", None),
    ],
)
def test_title_is_the_first_meaningful_line(prompt: str, title: str | None) -> None:
    assert title_line(prompt) == title


_FRAMES = st.sampled_from(
    ["", "   ", "[[ ## user_query ## ]]", "@[User]:", "---", "```", "<task>", "</task>", "***"]
)


@given(
    frames=st.lists(_FRAMES, max_size=6),
    words=st.lists(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1), min_size=1),
    rest=st.text(max_size=200),
)
@example(frames=["[[ ## user_query ## ]]", ""], words=["What", "is", "2"], rest="")
def test_framing_lines_never_make_the_title(frames: list[str], words: list[str], rest: str) -> None:
    request = " ".join(words)
    title = title_line("\n".join([*frames, request, rest]))
    assert title == request[:TITLE_LIMIT]


@given(st.text(max_size=400))
def test_a_title_is_one_line_within_the_limit(prompt: str) -> None:
    title = title_line(prompt)
    if title is not None:
        assert title and title == title.strip() and len(title) <= TITLE_LIMIT
        assert "\n" not in title and "\r" not in title


def _derive_copilot(path: Path):  # type: ignore[no-untyped-def]
    sid = path.stem
    lines = [(0, path.read_bytes())] if path.suffix == ".json" else file_lines(path)
    return derive_session("copilot", sid, [SourceLines("s", str(path), sid, "", lines)])


@pytest.mark.parametrize(
    ("prefix", "title"),
    [
        ("1afc31c8", "What is 2+2?"),
        (
            "2426852d",
            "Respond with exactly PASS. No punctuation, explanation, markdown, or extra text.",
        ),
        ("487fbe81", "Reply with AGENTV_SDK_CHILD_RUNNER_READY only."),
        ("06141331", "專案經過了多輪跌代 可能會產生"),  # the legacy document's first user entry
    ],
)
def test_copilot_titles_from_the_real_files(prefix: str, title: str) -> None:
    (path,) = COPILOT.glob(f"{prefix}*")
    assert _derive_copilot(path).session.title == title


def test_a_claude_prompt_of_only_injected_context_does_not_title_the_session() -> None:
    sid = "s-titled"
    rows = [
        _turn(sid, "u1", "<system-reminder>\nToday is Monday.\n</system-reminder>"),
        _turn(sid, "u2", "[[ ## user_query ## ]]\n\nadd a --dry-run flag", "2025-06-01T00:00:05Z"),
    ]
    d = derive_session("claude", sid, [SourceLines("p", "/p", sid, "", as_lines(rows))])
    assert d.session.title == "add a --dry-run flag"


# --- built-in slash commands ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["init", "review", "security-review", "pr-comments", "compact", "memory", "release-notes"],
)
def test_a_builtin_command_prompting_the_model_is_not_a_skill(command: str) -> None:
    sid = "s-builtin"
    rows = [
        _command(sid, "u1", command),
        _meta(sid, "u2", f"Please do what /{command} does.\n\nStep 1: read the code."),
        _command(sid, "u3", "superpowers:write-plan"),
        _meta(sid, "u4", "# Write a plan\n\nBreak the work into tasks.\n"),
    ]
    d = derive_session("claude", sid, [SourceLines("p", "/p", sid, "", as_lines(rows))])
    assert d.session.skills == ["superpowers:write-plan"]
    assert [s.name for s in d.spans if s.kind == "SKILL"] == ["superpowers:write-plan"]
    (first,) = [s for s in d.spans if s.kind == "CHAIN" and s.attributes.get("skillops.command")]
    assert first.attributes["skillops.command"] == f"/{command}"
    assert d.session.title == f"/{command}"


def test_a_skill_from_a_folder_named_like_a_builtin_is_still_a_skill() -> None:
    sid = "s-folder"
    rows = [
        _command(sid, "u1", "review"),
        _meta(
            sid, "u2", "Base directory for this skill: /home/u/.claude/skills/review\n\n# Review"
        ),
    ]
    d = derive_session("claude", sid, [SourceLines("p", "/p", sid, "", as_lines(rows))])
    assert d.session.skills == ["review"]


def test_builtin_tables_hold_each_agents_own_commands() -> None:
    for agent in ("claude", "codex", "gemini", "copilot"):
        assert is_builtin(agent, "/init") and is_builtin(agent, "INIT")
        assert all(name == name.strip().lower() and name for name in BUILTIN_COMMANDS[agent])
    assert is_builtin("claude", "/security-review") and not is_builtin("claude", "/simplify")
    assert not is_builtin("claude", "superpowers:write-plan")
    assert not is_builtin("nobody", "/init")


# --- plugin:skill and skill are one skill -----------------------------------------------


def _home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    body = "# Brainstorming\n\nAsk one question at a time.\n"
    other = "# Brainstorming (another plugin)\n\nList ten ideas first.\n"
    plugin_dir = tmp_path / "plugins" / "superpowers" / "skills" / "brainstorming"
    stories = [
        ("a1", "superpowers:brainstorming", plugin_dir, body, 0),
        ("a2", "brainstorming", plugin_dir, body, 1),
        ("a3", "other:brainstorming", tmp_path / "plugins" / "other", other, 2),
    ]
    for n, (tag, skill, directory, text, day) in enumerate(stories):
        claude_session(
            home,
            session=f"5e7c1b2a-0000-4000-8000-0000000000{tag}",
            skill=skill,
            skill_dir=directory,
            body=text,
            prompt=f"design the cache, take {n}",
            tools=["Read"],
            final="done",
            start=T0.replace(day=T0.day + day),
        )
    # A session that runs /init: the built-in prompts the model, and is not a skill.
    rows: list[dict[str, Any]] = [
        _command("5e7c1b2a-0000-4000-8000-0000000000b1", "u1", "init"),
        _meta("5e7c1b2a-0000-4000-8000-0000000000b1", "u2", "Please analyze this codebase."),
    ]
    path = (
        home / ".claude" / "projects" / "-work-app" / "5e7c1b2a-0000-4000-8000-0000000000b1.jsonl"
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = daemon_env(home)
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)
    return home, env


def _json(env: dict[str, str], *args: str) -> Any:
    done = run_ctl(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_a_plugin_skill_and_its_plain_name_are_one_row(tmp_path: Path) -> None:
    _home_path, env = _home(tmp_path)
    rows = {r["skill"]: r for r in _json(env, "skills")}
    assert set(rows) == {"brainstorming", "other:brainstorming"}  # no "init"
    one = rows["brainstorming"]
    assert one["aliases"] == ["superpowers:brainstorming"]
    assert one["sessions"] == 2 and one["versions"] == 1
    assert (
        rows["other:brainstorming"]["aliases"] == []
        and rows["other:brainstorming"]["sessions"] == 1
    )

    table = run_ctl("skills", env={**env, "COLUMNS": "200"}).stdout
    assert "brainstorming (aka superpowers:brainstorming)" in table
    assert "\ninit " not in table

    for name in ("superpowers:brainstorming", "brainstorming"):
        report = _json(env, "skill", "show", name)
        assert report["skill"] == "brainstorming"
        assert report["aliases"] == ["superpowers:brainstorming"]
        (version,) = report["versions"]
        assert version["tag"] == "v1" and len(version["sessions"]) == 2
    shown = run_ctl("skill", "show", "superpowers:brainstorming", env=env).stdout
    assert shown.startswith("skill brainstorming (aka superpowers:brainstorming)")

    listed = _json(env, "sessions", "--skill", "superpowers:brainstorming")
    assert len(listed) == 2
    assert len(_json(env, "sessions", "--skill", "other:brainstorming")) == 1
    # The names stay as recorded; the view is rebuilt to the same digest.
    check = run_ctl("rebuild", "--check", env=env)
    assert check.returncode == 0, check.stderr + check.stdout
