"""``skillopsctl usage`` agrees with ccusage on the real corpus (tokens exactly, cost within 2 %).

ccusage (npm, pinned in ``tools/ccusage``; ``npm ci --prefix tools/ccusage``, which
``.ci/run`` does) reads the same transcripts from a temporary HOME with ``--offline``
pricing; skillops reads them through a real ``skillopsd --once``. Without ccusage installed
the test skips saying how to install it; under CI (``SKILLOPS_REQUIRE_SHARED``/``CI``) it
fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._agents import gemini_files, layout_gemini
from ._capture_helpers import extract_corpus
from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from ._shared import skip_or_fail
from .conftest import REPO, run_ctl

pytestmark = pytest.mark.slow

CCUSAGE = REPO / "tools" / "ccusage" / "node_modules" / ".bin" / "ccusage"
TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = extract_corpus(tmp_path_factory.mktemp("usage-home"))
    run_once(home)
    return home


def _ccusage(home: Path, *args: str, tz: str = "UTC") -> dict[str, Any]:
    if not CCUSAGE.exists():
        skip_or_fail(f"ccusage is not installed at {CCUSAGE}: run npm ci --prefix tools/ccusage")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CODEX_HOME": str(home / ".codex"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TZ": tz,
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        [str(CCUSAGE), *args, "--offline", "--json", "--timezone", tz],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _ours(home: Path, *args: str, tz: str = "UTC") -> dict[str, Any]:
    done = run_ctl(
        "--db", str(db_path(home)), "usage", *args, "--json", env={**daemon_env(home), "TZ": tz}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _agree(ours: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]) -> int:
    assert sorted(ours) == sorted(theirs)
    priced = 0
    for key, their in theirs.items():
        mine = ours[key]
        assert [mine[f] for f in TOKENS] == [their[f] for f in TOKENS], key
        if mine["totalCost"] is not None and mine["unpricedResponses"] == 0 and their["totalCost"]:
            assert mine["totalCost"] == pytest.approx(their["totalCost"], rel=0.02), key
            priced += 1
    return priced


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo"])
def test_daily_agrees_with_ccusage_day_by_day_in_every_zone(home: Path, tz: str) -> None:
    theirs = _ccusage(home, "daily", tz=tz)
    ours = _ours(home, "daily", tz=tz)
    priced = _agree(
        {r["period"]: r for r in ours["daily"]}, {r["period"]: r for r in theirs["daily"]}
    )
    assert priced == len(theirs["daily"]) > 30
    mine = {r["period"]: r for r in ours["daily"]}
    for row in theirs["daily"]:
        assert mine[row["period"]]["metadata"]["agents"] == row["metadata"]["agents"]
        assert mine[row["period"]]["agent"] == row["agent"] == "all"
    assert [ours["totals"][f] for f in TOKENS] == [theirs["totals"][f] for f in TOKENS]
    assert ours["totals"]["totalCost"] == pytest.approx(theirs["totals"]["totalCost"], rel=0.02)


def test_claude_code_alone_agrees_with_ccusage_claude(home: Path) -> None:
    theirs = _ccusage(home, "claude", "daily")
    ours = _ours(home, "daily", "--agent", "claude")
    priced = _agree(
        {r["period"]: r for r in ours["daily"]}, {r["date"]: r for r in theirs["daily"]}
    )
    assert priced > 30


def test_weeks_and_months_agree_with_ccusage(home: Path) -> None:
    for kind in ("weekly", "monthly"):
        theirs = _ccusage(home, kind)
        ours = _ours(home, kind)
        _agree({r["period"]: r for r in ours[kind]}, {r["period"]: r for r in theirs[kind]})


def test_sessions_agree_with_ccusage(home: Path) -> None:
    theirs = _ccusage(home, "session")["session"]
    ours = {r["period"]: r for r in _ours(home, "session")["session"]}
    # ccusage names a Codex session by its rollout path, which ends with the thread id.
    mapped = {}
    for row in theirs:
        native = next((n for n in ours if row["period"].endswith(n)), None)
        assert native is not None, row["period"]
        mapped[native] = row
    assert _agree(ours, mapped) == len(theirs) > 50


@pytest.fixture(scope="module")
def gemini_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every Gemini CLI session of the agents corpus where Gemini CLI writes them."""
    home = tmp_path_factory.mktemp("usage-gemini")
    files = gemini_files()
    if not files:
        skip_or_fail("the agents corpus (shared/corpus/agents/gemini) is missing")
    for source in files:
        layout_gemini(home, source)
    (home / ".claude" / "projects").mkdir(parents=True)  # ccusage wants the folder to exist
    run_once(home)
    return home


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo"])
def test_gemini_agrees_with_ccusage_thoughts_outside_output(gemini_home: Path, tz: str) -> None:
    # Gemini CLI reports a response's thinking (``thoughts``) beside its output; ccusage
    # leaves it out of outputTokens and keeps it in totalTokens, and so does usage.
    for kind in ("daily", "monthly"):
        theirs = _ccusage(gemini_home, kind, tz=tz)
        ours = _ours(gemini_home, kind, tz=tz)
        priced = _agree(
            {r["period"]: r for r in ours[kind]}, {r["period"]: r for r in theirs[kind]}
        )
        assert priced == len(theirs[kind]) > (10 if kind == "daily" else 3)
        assert [ours["totals"][f] for f in TOKENS] == [theirs["totals"][f] for f in TOKENS]
        sums = ours["totals"]
        # Thinking is in the total though not in any column: the columns sum to less.
        parts = sum(sums[f] for f in TOKENS[:4])
        assert sums["totalTokens"] > parts
        assert sums["totalCost"] == pytest.approx(theirs["totals"]["totalCost"], rel=1e-9)
