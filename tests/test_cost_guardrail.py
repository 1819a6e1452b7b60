"""Cost (USD per execution) is the A/B test's cost guardrail by default; tokens are selectable."""

from __future__ import annotations

from pathlib import Path

import pytest

from skillopsd.events import Database
from skillopsd.versions.policy import BanditPolicy
from skillopsd.versions.store import add_challenger, import_skill, read_state, record_manual

from .test_versions_store import challenger_file, folder, policy, sync


def _dear_but_better(db: Database, tmp_path: Path, **settings: int | float | bool) -> str:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    policy(db, min_per_arm=10, promote_bar=0.9, retire_bar=0.9, **settings)  # type: ignore[arg-type]
    v2 = add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    for n in range(10):
        # The challenger always succeeds but costs three times as much; tokens equal.
        record_manual(db, "tidy", "v2", "success", 1000, None, f"c{n}", cost_usd=3.0)
        record_manual(db, "tidy", "v1", "failure", 1000, None, f"k{n}", cost_usd=1.0)
    sync(db)
    return v2.content_hash


def test_a_challenger_three_times_dearer_is_not_promoted(db: Database, tmp_path: Path) -> None:
    v2 = _dear_but_better(db, tmp_path)
    state = read_state(db, "tidy")
    assert state.champion != v2 and state.versions[v2].retired


def test_with_the_tokens_guardrail_the_same_challenger_is_promoted(
    db: Database, tmp_path: Path
) -> None:
    v2 = _dear_but_better(db, tmp_path, guardrail_tokens=True)
    assert read_state(db, "tidy").champion == v2


def test_the_default_guardrail_is_cost() -> None:
    assert BanditPolicy().cost_guardrail() == ("cost_usd", "cost_usd")
    assert BanditPolicy(guardrail_tokens=True).cost_guardrail() == ("tokens", "tokens")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc"])
def test_a_bad_cost_by_hand_is_refused(value: str, tmp_path: Path) -> None:
    from .conftest import run_ctl

    done = run_ctl(
        "--db",
        str(tmp_path / "x.db"),
        "skill",
        "record",
        "tidy",
        "--version",
        "v1",
        "--success",
        "--cost-usd",
        value,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
