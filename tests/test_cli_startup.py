"""What a CLI command imports: read commands skip what only capture, derivation and logging use.

Start time is measured in bench/derive.py; these tests keep the reason for it from regressing
(one eager import brings back asyncio, re2 and the whole deriver).
"""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.cli import cli
from skillopsd.cli._app import COMMAND_MODULES, load_commands
from skillopsd.cli._output import ELLIPSIS, cells, cut

from ._capture_helpers import FIXTURES

REPO = Path(__file__).resolve().parent.parent
_HEAVY = ("structlog", "asyncio", "skillopsd.derive", "skillopsd.deriving", "skillopsd.sources")


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tree(command: click.Command) -> object:
    if isinstance(command, click.Group):
        return {name: _tree(sub) for name, sub in sorted(command.commands.items())}
    return None


def test_each_command_loads_whole_from_its_own_modules() -> None:
    """Run alone, a command has every subcommand it has when all modules are loaded."""
    load_commands()
    assert set(cli.commands) == set(COMMAND_MODULES)
    code = """
import json, sys
import click
from skillopsd.cli import cli
from tests.test_cli_startup import _tree
command = cli.get_command(click.Context(cli), sys.argv[1])
print(json.dumps(_tree(command)))
"""
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", code, name], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        for name in COMMAND_MODULES
    }
    for name, run in runs.items():
        out, _ = run.communicate(timeout=60)
        assert json.loads(out) == _tree(cli.commands[name]), name


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database holding one real Codex session, and that session's id."""
    db = tmp_path_factory.mktemp("startup") / "s.db"
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db), "ingest", str(FIXTURES / "codex_skill.jsonl")])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["--db", str(db), "sessions", "--json"])
    (session,) = json.loads(listed.stdout)
    return db, session["session_id"]


@pytest.mark.parametrize("command", ["sessions", "session show", "session show --json"])
def test_read_commands_import_no_capture_derivation_or_logging(
    ingested: tuple[Path, str], command: str
) -> None:
    db, session_id = ingested
    args = [*command.split(), *([session_id] if "show" in command else [])]
    code = f"""
import json, sys
from skillopsd.cli import cli
cli(["--db", {str(db)!r}, *{args!r}], standalone_mode=False)
print(json.dumps(sorted(m for m in {_HEAVY!r} if m in sys.modules)))
"""
    out = _python(code)
    assert session_id[:8] in out  # the command did its work
    assert json.loads(out.splitlines()[-1]) == []


def test_logging_configured_before_structlog_loads_applies_when_it_does() -> None:
    code = """
import io, json, sys
from skillopsd import _logging
stream = io.StringIO()
_logging.configure("warning", stream=stream)
assert "structlog" not in sys.modules
log = _logging.get_logger("t")
log.info("dropped")
log.warning("kept", n=1)
lines = [json.loads(line) for line in stream.getvalue().splitlines()]
print(json.dumps([(r["event"], r["level"], r.get("n")) for r in lines]))
"""
    assert json.loads(_python(code)) == [["kept", "warning", 1]]


def test_a_module_importing_structlog_itself_later_logs_as_configured() -> None:
    """Modules that import structlog directly, after the CLI configured logging, obey it."""
    code = """
import io, json, sys
from skillopsd import _logging
stream = io.StringIO()
_logging.configure("warning", stream=stream)
assert "structlog" not in sys.modules
import structlog
log = structlog.get_logger("direct")
log.debug("dropped")
log.warning("kept", n=2)
lines = [json.loads(line) for line in stream.getvalue().splitlines()]
print(json.dumps([(r["event"], r["level"], r.get("n")) for r in lines]))
"""
    assert json.loads(_python(code)) == [["kept", "warning", 2]]


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab c\t漢字ｱé…\u0301")), st.integers(0, 40))
def test_cut_measures_no_more_than_it_shows(text: str, width: int) -> None:
    """``cut`` stops measuring at ``width`` characters and still answers as before."""
    assert cells(text) == _columns(text)
    shown = cut(text, width)
    if _columns(text) <= width:
        assert shown == text
    else:
        assert shown.endswith(ELLIPSIS) or shown == ""
        assert _columns(shown) <= width
        assert text.startswith(shown.removesuffix(ELLIPSIS))


def test_a_capture_only_daemon_run_imports_no_deriver_exporter_or_logger(tmp_path: Path) -> None:
    """``skillopsd --once --no-derive`` (bench/backfill.py's subject) imports only capture."""
    home = tmp_path / "home"
    (home / ".claude" / "projects" / "p").mkdir(parents=True)
    (home / ".claude" / "projects" / "p" / "s.jsonl").write_text(
        '{"type":"user","sessionId":"s","message":{"role":"user","content":"hi"}}\n'
    )
    code = f"""
import os, sys
os.environ["HOME"] = {str(home)!r}
sys.argv = ["skillopsd", "--once", "--no-derive", "--log-level", "warning"]
from skillopsd.daemon import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ("structlog", "asyncio", "skillopsd.deriving", "skillopsd.derive", "skillopsd.export",
         "skillopsd.versions", "skillopsd.evals", "watchdog")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy)))
"""
    assert _python(code).strip() == "[]"
    assert (home / ".local" / "share" / "skillops" / "skillops.db").exists()
