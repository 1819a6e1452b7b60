"""The export benchmark still runs (its figures are read by people, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_export_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "export.py"), "--repeat", "1", "--sessions", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio export/floor:" in result.stdout
