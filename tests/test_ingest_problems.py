"""``skillopsctl ingest`` names what it cannot read as the daemon does, and exits 1 (review K4).

A FIFO, a file it may not open, a symbolic link loop and a link that leads nowhere were all
"not a recognised transcript (try --agent)" in a folder, and a named FIFO alone exited 0;
``--agent`` fixes none of them. Both now ask ``sources/_access.py``, so ``ingest`` and
``skillopsctl status`` (after the daemon met the same files) say the same thing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ._capture_helpers import CLAUDE_SESSION, FIXTURES, claude_project
from ._daemon import daemon_env
from .conftest import console_script, ctl_command

LOOP_A = "aaaaaaaa-0000-0000-0000-000000000006.jsonl"
LOOP_B = "aaaaaaaa-0000-0000-0000-000000000007.jsonl"


def _unprivileged() -> list[str]:
    """A prefix that runs a command unable to read a ``chmod 000`` file (root reads any)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root reads any file, and setpriv is not installed to drop that")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def _run(prefix: list[str], *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _bad_project(home: Path) -> tuple[Path, dict[str, str]]:
    """A Claude project folder: one good transcript and every kind of file it cannot read,
    with the kind each is."""
    project = claude_project(home)
    shutil.copy(FIXTURES / "claude_skill.jsonl", project / f"{CLAUDE_SESSION}.jsonl")
    fifo = project / "aaaaaaaa-0000-0000-0000-000000000005.jsonl"
    os.mkfifo(fifo)
    locked = project / "aaaaaaaa-0000-0000-0000-000000000009.jsonl"
    shutil.copy(FIXTURES / "claude_skill.jsonl", locked)
    locked.chmod(0)
    os.symlink(LOOP_B, project / LOOP_A)
    os.symlink(LOOP_A, project / LOOP_B)
    dangling = project / "aaaaaaaa-0000-0000-0000-00000000000c.jsonl"
    os.symlink("nowhere.jsonl", dangling)
    closed = project / "aaaaaaaa-0000-0000-0000-00000000000d"  # a session's subagents folder
    closed.mkdir(mode=0)
    return project, {
        str(closed): "unlistable",
        str(fifo): "not_regular",
        str(locked): "unreadable",
        str(project / LOOP_A): "link_loop",
        str(project / LOOP_B): "link_loop",
        str(dangling): "dangling_link",
    }


def test_ingest_names_what_it_cannot_read_as_the_daemon_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project, kinds = _bad_project(home)
    prefix = _unprivileged()
    db = tmp_path / "ingest.db"
    ctl = [*ctl_command(), "--db", str(db)]

    done = _run(prefix, *ctl, "ingest", str(project), "--json", home=home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["files"] == 1 and report["lines"] > 0 and report["skipped"] == []
    problems = {p["path"]: p for p in report["problems"]}
    assert {path: p["kind"] for path, p in problems.items()} == kinds
    loop = problems[str(project / LOOP_A)]["message"]
    assert loop == f"symbolic link loop ({LOOP_A} → {LOOP_B} → {LOOP_A})"
    assert problems[str(project / "aaaaaaaa-0000-0000-0000-000000000005.jsonl")]["message"] == (
        "not a regular file (fifo)"
    )
    assert problems[str(project / "aaaaaaaa-0000-0000-0000-000000000009.jsonl")]["message"] == (
        "cannot open: Permission denied"
    )

    closed = problems[str(project / "aaaaaaaa-0000-0000-0000-00000000000d")]["message"]
    assert closed == "cannot list folder: Permission denied"

    # The table form: the summary says how many, each one is one line on stderr.
    done = _run(prefix, *ctl, "ingest", str(project), home=home)
    assert done.returncode == 1, done.stderr
    assert done.stdout.rstrip().endswith("; 6 files or folders could not be read"), done.stdout
    lines = done.stderr.splitlines()
    assert "not a recognised transcript" not in done.stderr
    assert len(lines) == 6 and all(line.startswith("cannot capture ") for line in lines)

    # The daemon, meeting the same files, records the same kinds and messages.
    daemon = _run(prefix, console_script("skillopsd"), "--once", "--no-derive", home=home)
    assert daemon.returncode == 0, daemon.stderr
    status = _run(prefix, *ctl_command(), "status", "--json", home=home)
    recorded = {p["path"]: (p["kind"], p["message"]) for p in json.loads(status.stdout)["problems"]}
    assert recorded == {path: (p["kind"], p["message"]) for path, p in problems.items()}


def test_ingest_of_only_files_it_cannot_read_exits_1_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project, _ = _bad_project(home)
    db = tmp_path / "none.db"
    fifo = project / "aaaaaaaa-0000-0000-0000-000000000005.jsonl"
    for args in (["--agent", "claude", str(fifo)], [str(fifo)], [str(project / LOOP_A)]):
        done = _run([], *ctl_command(), "--db", str(db), "ingest", *args, home=home)
        assert done.returncode == 1 and done.stdout == "", (args, done.stdout)
        assert done.stderr.count("\n") == 1, (args, done.stderr)
        assert "nothing captured" in done.stderr and "Traceback" not in done.stderr
        assert not db.exists()
    # A named loop is a loop, not click's "does not exist"; a name that is not there is.
    done = _run([], *ctl_command(), "--db", str(db), "ingest", str(project / LOOP_A), home=home)
    assert f"cannot capture {project / LOOP_A}: symbolic link loop (" in done.stderr
    missing = project / "nope.jsonl"
    done = _run([], *ctl_command(), "--db", str(db), "ingest", str(missing), home=home)
    assert (
        done.returncode == 2 and done.stderr.strip() == f"Error: {missing}: no such file or folder"
    )
    # Beside a good file: the good one is captured, the exit status still says one was not.
    good = project / f"{CLAUDE_SESSION}.jsonl"
    done = _run([], *ctl_command(), "--db", str(db), "ingest", str(fifo), str(good), home=home)
    assert done.returncode == 1 and "from 1 file," in done.stdout, done.stderr
    assert done.stdout.rstrip().endswith("; 1 file or folder could not be read")
    assert done.stderr == f"cannot capture {fifo}: not a regular file (fifo)\n"


def test_a_link_that_reads_no_transcript_says_where_it_leads(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    shutil.copy(FIXTURES / "claude_skill.jsonl", project / f"{CLAUDE_SESSION}.jsonl")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a transcript\n")
    os.symlink(notes, project / "notes.jsonl")
    done = _run(
        [], *ctl_command(), "--db", str(tmp_path / "d.db"), "ingest", str(project), home=home
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"skipped {project / 'notes.jsonl'}: symbolic link to {notes},"
        " not a recognised transcript (try --agent)\n"
    )
