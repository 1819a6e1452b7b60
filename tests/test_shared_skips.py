"""Tests needing ../shared skip on a bare clone, naming what to provide, and fail under CI.

Runs pytest on a small repository laid out like this one (this conftest and its skip
machinery, and probe tests reaching ../shared in each way a test does), with and without a
../shared beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent

PROBES = """
import subprocess
import sys

import pytest

from .conftest import SHARED

FIXTURES = SHARED / "fixtures" / "qvr"


def _helper() -> str:
    return (FIXTURES / "a.jsonl").read_text()


@pytest.fixture
def corpus_file():
    return SHARED / "corpus" / "real-home.tar.gz"


def test_direct():
    assert (FIXTURES / "a.jsonl").read_text() == "x"


def test_through_a_helper():
    assert _helper() == "x"


def test_through_a_fixture(corpus_file):
    assert corpus_file.read_bytes() == b"tar"


def test_in_a_subprocess():
    # Like a benchmark reading the corpus: no path under ../shared in sight of the scan.
    code = "open('../shared/corpus/real-home.tar.gz')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_needing_nothing():
    assert sum([1, 1]) == 2
"""


def _outcomes(out: str) -> dict[str, str]:
    """Each probe's outcome from ``pytest -rA`` short summary lines."""
    found = {}
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED") and "::" in rest:
            found[rest.split("::")[1].split(" ")[0]] = word
    return found


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    for name in ("__init__.py", "conftest.py", "_shared.py", "_isolation.py"):
        shutil.copy(TESTS / name, repo / "tests" / name)
    (repo / "tests" / "test_probes.py").write_text(PROBES)
    return repo


def _pytest(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "SKILLOPS_REQUIRE_SHARED")}
    full["PYTHONPATH"] = os.pathsep.join([str(repo), *sys.path])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        env={**full, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


NEEDING = ["test_direct", "test_through_a_helper", "test_through_a_fixture"]


def test_bare_clone_skips_naming_what_to_provide(clone: Path) -> None:
    result = _pytest(clone)
    out = result.stdout
    assert result.returncode == 0, out
    assert "4 skipped" in out and "1 passed" in out, out
    assert out.count("needs ../shared beside the repository") >= 2, out
    assert "missing: fixtures/qvr, corpus/real-home.tar.gz" in out


@pytest.mark.parametrize("env", [{"SKILLOPS_REQUIRE_SHARED": "1"}, {"CI": "true"}])
def test_under_ci_the_skips_are_failures(clone: Path, env: dict[str, str]) -> None:
    result = _pytest(clone, **env)
    out = result.stdout
    assert result.returncode == 1, out
    outcomes = _outcomes(out)
    assert all(outcomes.get(name) in ("FAILED", "ERROR") for name in NEEDING), out
    assert outcomes.get("test_in_a_subprocess") == "FAILED", out
    assert outcomes.get("test_needing_nothing") == "PASSED", out
    assert "skipped" not in out.splitlines()[-1], out
    assert "needs ../shared beside the repository" in out


def test_with_shared_beside_it_everything_runs(clone: Path) -> None:
    shared = clone.parent / "shared"
    (shared / "fixtures" / "qvr").mkdir(parents=True)
    (shared / "fixtures" / "qvr" / "a.jsonl").write_text("x")
    (shared / "corpus").mkdir()
    (shared / "corpus" / "real-home.tar.gz").write_bytes(b"tar")
    (shared / "corpus" / "agents").mkdir()
    result = _pytest(clone, SKILLOPS_REQUIRE_SHARED="1")
    assert result.returncode == 0, result.stdout
    assert "5 passed" in result.stdout, result.stdout


def test_the_whole_suite_collects_without_shared(tmp_path: Path) -> None:
    """No test module reads ../shared at import: a bare clone once stopped at collection."""
    repo = tmp_path / "repo"
    shutil.copytree(TESTS, repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "SKILLOPS_REQUIRE_SHARED")}
    full["PYTHONPATH"] = os.pathsep.join([str(repo), *sys.path])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
        cwd=repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "error" not in result.stdout.splitlines()[-1], result.stdout[-3000:]
