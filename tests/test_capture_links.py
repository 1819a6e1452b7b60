"""Symbolic links never carry capture outside the agents' folders (issue 19, item 3).

A ``*.jsonl`` link to a file outside the roots is a problem, never read; a link to a
transcript inside them is followed once (its lines are stored once, under the file's own
name); a dangling link is a problem ``status`` shows, gone once the link is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import apsw

from ._capture_helpers import CLAUDE_SESSION, FIXTURES, claude_project
from ._daemon import daemon_env, db_path
from .conftest import console_script, run_ctl

SECRET = b'{"type":"user","sessionId":"evil","message":{"role":"user","content":"root:x:0:0"}}\n'


def _once(home: Path) -> None:
    done = subprocess.run(
        [console_script("skillopsd"), "--once", "--no-derive"],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def _stored(home: Path) -> tuple[int, list[str]]:
    """Lines stored, and the paths of the files they came from."""
    conn = apsw.Connection(str(db_path(home)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        lines = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'TranscriptLineCaptured'"
        ).fetchone()[0]
        paths = [r[0] for r in conn.execute("SELECT path FROM capture_sources ORDER BY path")]
    finally:
        conn.close()
    return lines, paths


def _status(home: Path) -> dict:
    done = run_ctl("status", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_links_out_of_the_folders_are_refused_inside_followed_once_dangling_shown(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    real = project / f"{CLAUDE_SESSION}.jsonl"
    shutil.copy(FIXTURES / "claude_skill.jsonl", real)
    outside = tmp_path / "elsewhere" / "passwd.jsonl"
    outside.parent.mkdir()
    outside.write_bytes(SECRET * 3)
    os.symlink(outside, project / "evil.jsonl")
    os.symlink(real, project / "11111111-2222-3333-4444-555555555555.jsonl")  # a second name
    other = claude_project(home).parent / "-home-u-other"
    other.mkdir()
    os.symlink(real, other / f"{CLAUDE_SESSION}.jsonl")  # the same file from another project
    os.symlink(tmp_path / "nowhere.jsonl", project / "dangling.jsonl")
    _once(home)

    lines, paths = _stored(home)
    real_lines = sum(1 for line in real.read_bytes().splitlines() if line.strip())
    assert lines == real_lines  # stored once, under one name
    assert paths == [str(real)]
    conn = apsw.Connection(str(db_path(home)), flags=apsw.SQLITE_OPEN_READONLY)
    stored = b"".join(bytes(r[0]) for r in conn.execute("SELECT data FROM payload_frames"))
    conn.close()
    assert b"root:x:0:0" not in stored

    status = _status(home)
    kinds = {p["path"]: p["kind"] for p in status["problems"]}
    assert kinds == {
        str(project / "evil.jsonl"): "link_outside",
        str(project / "dangling.jsonl"): "dangling_link",
    }
    shown = run_ctl("status", env=daemon_env(home)).stdout
    assert f"cannot capture {project / 'evil.jsonl'}: symbolic link to {outside}" in shown
    assert "outside the agents' folders: not read" in shown
    assert f"cannot capture {project / 'dangling.jsonl'}: symbolic link to" in shown

    # A second pass records nothing new; removing the links ends their problems.
    _once(home)
    assert _stored(home)[0] == real_lines
    (project / "dangling.jsonl").unlink()
    (project / "evil.jsonl").unlink()
    _once(home)
    assert _status(home)["problems"] == []


def test_a_root_that_is_itself_a_link_is_captured(tmp_path: Path) -> None:
    """Many keep ~/.claude on another disk: the roots are compared resolved."""
    home = tmp_path / "home"
    home.mkdir()
    store = tmp_path / "disk" / "claude"
    (store / "projects" / "-home-u-proj").mkdir(parents=True)
    shutil.copy(FIXTURES / "claude_skill.jsonl", store / "projects" / "-home-u-proj" / "s.jsonl")
    os.symlink(store, home / ".claude")
    os.symlink(
        store / "projects" / "-home-u-proj" / "s.jsonl",
        store / "projects" / "-home-u-proj" / "t.jsonl",
    )
    _once(home)
    lines, paths = _stored(home)
    assert lines > 0 and len(paths) == 1
    assert _status(home)["problems"] == []


def test_a_link_loop_is_called_a_loop(tmp_path: Path) -> None:
    """Review K5: a loop was "a symbolic link to itself, which does not exist"."""
    home = tmp_path / "home"
    project = claude_project(home)
    shutil.copy(FIXTURES / "claude_skill.jsonl", project / f"{CLAUDE_SESSION}.jsonl")
    os.symlink("B.jsonl", project / "A.jsonl")
    os.symlink("A.jsonl", project / "B.jsonl")
    _once(home)
    problems = {p["path"]: (p["kind"], p["message"]) for p in _status(home)["problems"]}
    assert problems == {
        str(project / "A.jsonl"): ("link_loop", "symbolic link loop (A.jsonl → B.jsonl → A.jsonl)"),
        str(project / "B.jsonl"): ("link_loop", "symbolic link loop (B.jsonl → A.jsonl → B.jsonl)"),
    }
    # A database that recorded the loop as dangling (before loops were told apart) keeps one
    # problem per link, the loop, once the daemon passes again.
    conn = apsw.Connection(str(db_path(home)))
    conn.execute(
        "INSERT INTO capture_problems (path, kind, agent, message) VALUES (?, ?, ?, ?)",
        (str(project / "A.jsonl"), "dangling_link", "claude", "symbolic link to itself"),
    )
    conn.close()
    _once(home)
    kinds = sorted(p["kind"] for p in _status(home)["problems"])
    assert kinds == ["link_loop", "link_loop"]
    (project / "A.jsonl").unlink()
    (project / "B.jsonl").unlink()
    _once(home)
    assert _status(home)["problems"] == []
