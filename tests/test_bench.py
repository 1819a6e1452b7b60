"""The benchmarks still run (their figures are read by people, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=BENCH.parent
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_append_benchmark_runs() -> None:
    out = _run(str(BENCH / "append.py"), "--events", "3000", "--batch", "500")
    assert "ratio log/floor:" in out


def test_latency_benchmark_runs() -> None:
    out = _run(str(BENCH / "latency.py"), "--seconds", "1", "--interval", "0.1")
    assert "skillopsd write->commit" in out and "p99" in out


def test_redaction_benchmark_runs() -> None:
    out = _run(str(BENCH / "redact.py"), "--repeat", "1")
    assert "overall" in out and "precision" in out


def test_redaction_on_files_benchmark_runs(tmp_path: Path) -> None:
    (tmp_path / "my.cnf").write_text("[client]\nuser = root\npassword = hunter\n")
    (tmp_path / "app.py").write_text("password = os.environ['DB_PASSWORD']\n")
    (tmp_path / "notes.bin").write_bytes(b"password=hunter22\xff")  # not text: skipped
    out = _run(str(BENCH / "redact_files.py"), "--list", "--against", "HEAD", str(tmp_path))
    assert "2 files" in out and "masks: 1\n" in out and "'hunter'" in out
    assert "masks at HEAD: " in out and "new masked: " in out


def test_decision_benchmark_runs() -> None:
    out = _run(str(BENCH / "decision.py"), "--experiments", "20")
    assert "better-20" in out and "+20 points promoted" in out


@pytest.mark.slow
def test_corpus_benchmarks_run() -> None:
    assert "ratio daemon/floor:" in _run(str(BENCH / "backfill.py"), "--repeat", "1")
    agents = _run(str(BENCH / "backfill_agents.py"), "--repeat", "1", "--copies", "1")
    assert "ratio gemini/claude" in agents
    assert "rederive of every session:" in _run(str(BENCH / "derive.py"), "--repeat", "1")
    assert "the fold beyond the floor:" in _run(str(BENCH / "fold.py"), "--repeat", "1", "--each")
    assert "copilot" in _run(str(BENCH / "agents.py"), "--repeat", "1")
    assert "ratio eval/floor:" in _run(str(BENCH / "evals.py"), "--repeat", "1")
    rewrite = _run(str(BENCH / "rewrite.py"), "--repeat", "1")
    assert "capture, with block digests:" in rewrite and "idle rescan, with block check:" in rewrite


def test_versions_benchmark_runs() -> None:
    out = _run(str(BENCH / "versions.py"), "--executions", "200", "--repeat", "1")
    assert "ratio fold/floor:" in out and "ratio sync/floor:" in out


@pytest.mark.slow
def test_usage_benchmark_runs() -> None:
    from ._shared import skip_or_fail

    if not (BENCH.parent / "tools" / "ccusage" / "node_modules" / ".bin" / "ccusage").exists():
        skip_or_fail("bench/usage.py needs ccusage: npm install --prefix tools/ccusage")
    out = _run(str(BENCH / "usage.py"), "--repeat", "1")
    assert "ratio ccusage/skillops:" in out
    assert "agreement: 43/43 days with equal tokens" in out


@pytest.mark.slow
def test_replay_benchmark_runs() -> None:
    assert "ratio replay/floor:" in _run(str(BENCH / "replay.py"), "--cases", "1", "--repeat", "1")


def test_serve_benchmark_runs() -> None:
    out = _run(str(BENCH / "serve.py"), "--sessions", "300", "--repeat", "1")
    assert "real corpus (target" in out and "300 synthetic sessions (target" in out
    assert "`/skill/SKILL`" in out


def test_pool_benchmark_runs() -> None:
    from ._postgres import server_bin
    from ._shared import skip_or_fail

    if server_bin() is None:
        skip_or_fail("bench/pool.py needs the PostgreSQL server binaries")
    out = _run(str(BENCH / "pool.py"), "--machines", "3", "--executions", "20", "--repeat", "1")
    assert "pool: 3 machines" in out and "routed on team" in out and "ratio pool/floor:" in out


@pytest.mark.slow
def test_team_benchmark_runs() -> None:
    from ._postgres import server_bin
    from ._shared import skip_or_fail

    if server_bin() is None:
        skip_or_fail("needs the PostgreSQL server binaries (apt-get install postgresql)")
    out = _run(str(BENCH / "team.py"), "--machines", "3", "--sessions", "4", "--concurrency", "2")
    assert "ratio sync/floor:" in out and "2 machines at once" in out
    # 3 machines of 4 sessions, every event on the server: the count the bench asserts itself.
    assert "3 x 4 sessions = 12 sessions" in out and "bytes per event" in out
    # The pooled view over every machine's sessions of the skill (the bench checks the count).
    assert "skillopsctl --team skill show slugify-title over" in out and "warm" in out
    # Beside it, its floor: the same command on the replica read as a local log.
    assert "on the replica as a local log" in out and "ratio floor/warm" in out
