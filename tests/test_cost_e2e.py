"""Cost through the real CLI: sessions, session show, status, usage; missing is missing.

Claude Code transcripts written here (a known model with 1-hour cache writes and a response
streamed over two records, a model no price table knows, a resumed session that repeats a
response), captured and derived by a real ``skillopsd --once`` on a temporary HOME.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skillopsd.cli._output import cells

from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from .conftest import run_ctl

pytestmark = pytest.mark.slow

KNOWN = "11111111-1111-4111-8111-111111111111"
UNKNOWN = "22222222-2222-4222-8222-222222222222"
RESUMED = "33333333-3333-4333-8333-333333333333"


def _user(sid: str, uuid: str, at: str, text: str) -> dict[str, Any]:
    return {
        "type": "user",
        "sessionId": sid,
        "uuid": uuid,
        "parentUuid": None,
        "timestamp": at,
        "cwd": "/work/proj",
        "message": {"role": "user", "content": text},
    }


def _assistant(
    sid: str, uuid: str, at: str, mid: str, rid: str, model: str, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "assistant",
        "sessionId": sid,
        "uuid": uuid,
        "parentUuid": None,
        "timestamp": at,
        "cwd": "/work/proj",
        "requestId": rid,
        "message": {
            "id": mid,
            "model": model,
            "role": "assistant",
            "type": "message",
            "content": [{"type": "text", "text": "done"}],
            "usage": usage,
        },
    }


def _usage(inp: int, out: int, read: int = 0, write: int = 0, hour: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "cache_creation": {
            "ephemeral_1h_input_tokens": hour,
            "ephemeral_5m_input_tokens": write - hour,
        },
    }


FIRST = _usage(10, 8, read=50_000, write=2_000, hour=2_000)  # streamed: output not final yet
FINAL = _usage(10, 178, read=50_000, write=2_000, hour=2_000)
# $5 input, $0.5 cache read, $10 1-hour cache write, $25 output per million (claude-opus-4-6).
FINAL_USD = (10 * 5 + 50_000 * 0.5 + 2_000 * 10 + 178 * 25) / 1_000_000
SECOND = _usage(3, 40, read=52_000)
SECOND_USD = (3 * 5 + 52_000 * 0.5 + 40 * 25) / 1_000_000


def _write(home: Path, sid: str, records: list[dict[str, Any]]) -> None:
    folder = home / ".claude" / "projects" / "-work-proj"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cost-home")
    opus = "claude-opus-4-6"
    known = [
        _user(KNOWN, "u1", "2026-04-11T10:00:00.000Z", "fix it"),
        _assistant(KNOWN, "a1", "2026-04-11T10:00:05.000Z", "msg_A", "req_A", opus, FIRST),
        _assistant(KNOWN, "a2", "2026-04-11T10:00:06.000Z", "msg_A", "req_A", opus, FINAL),
        _user(KNOWN, "u2", "2026-04-12T09:00:00.000Z", "again"),
        _assistant(KNOWN, "a3", "2026-04-12T09:00:03.000Z", "msg_B", "req_B", opus, SECOND),
    ]
    unknown = [
        _user(UNKNOWN, "u3", "2026-04-12T11:00:00.000Z", "hello"),
        _assistant(
            UNKNOWN,
            "a4",
            "2026-04-12T11:00:02.000Z",
            "msg_C",
            "req_C",
            "claude-imaginary-9",
            _usage(100, 20),
        ),
    ]
    # A resumed session repeats msg_B (same message and request id) before its own answer.
    resumed = [
        _user(RESUMED, "u4", "2026-04-12T12:00:00.000Z", "continue"),
        _assistant(RESUMED, "a5", "2026-04-12T09:00:03.000Z", "msg_B", "req_B", opus, SECOND),
    ]
    _write(home, KNOWN, known)
    _write(home, UNKNOWN, unknown)
    _write(home, RESUMED, resumed)
    run_once(home)
    return home


def _ctl(home: Path, *args: str, **env: str) -> tuple[int, str, str]:
    done = run_ctl("--db", str(db_path(home)), *args, env={**daemon_env(home), "TZ": "UTC", **env})
    return done.returncode, done.stdout, done.stderr


def _json(home: Path, *args: str) -> Any:
    code, out, err = _ctl(home, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _by_native(home: Path) -> dict[str, dict[str, Any]]:
    return {s["native_session_id"]: s for s in _json(home, "sessions")}


def test_a_session_costs_its_final_usage_at_list_price(home: Path) -> None:
    sessions = _by_native(home)
    cost = sessions[KNOWN]["cost"]
    assert cost["responses"] == 2 and cost["unpriced"] == 0
    assert cost["usd"] == pytest.approx(FINAL_USD + SECOND_USD, rel=1e-9)


def test_a_model_without_a_price_has_no_cost_not_zero(home: Path) -> None:
    sessions = _by_native(home)
    assert sessions[UNKNOWN]["cost"] == {"usd": None, "unpriced": 1, "responses": 1}
    code, out, _ = _ctl(home, "sessions")
    assert code == 0
    line = next(line for line in out.splitlines() if "hello" in line)
    assert "$0.00" not in line and " - " in line
    status = _json(home, "status")
    assert status["prices"].startswith("genai-prices ")
    assert [(u["model"], u["responses"], u["reason"]) for u in status["unpriced"]] == [
        ("claude-imaginary-9", 1, "price")
    ]
    code, out, _ = _ctl(home, "status")
    assert "no price  claude-imaginary-9 (anthropic): 1 response" in out


def test_session_show_prices_each_response(home: Path) -> None:
    shown = _json(home, "session", "show", KNOWN)
    llm = [s["span_id"] for s in shown["spans"] if s["kind"] == "LLM"]
    assert sorted(shown["costs"]) == sorted(llm)
    costs = sorted(shown["costs"][span] for span in llm)
    assert costs == pytest.approx(sorted([FINAL_USD, SECOND_USD]), rel=1e-9)
    assert all("skillops.cost.usd" not in s["attributes"] for s in shown["spans"])
    code, out, _ = _ctl(home, "session", "show", UNKNOWN)
    assert code == 0
    assert "no price" in out and "1 without a price" in out


def test_usage_counts_each_response_once_with_its_final_output(home: Path) -> None:
    report = _json(home, "usage", "daily")
    days = {r["period"]: r for r in report["daily"]}
    assert sorted(days) == ["2026-04-11", "2026-04-12"]
    first = days["2026-04-11"]
    assert (first["inputTokens"], first["outputTokens"]) == (10, 178)
    assert (first["cacheReadTokens"], first["cacheCreationTokens"]) == (50_000, 2_000)
    assert first["totalTokens"] == 10 + 178 + 50_000 + 2_000
    assert first["totalCost"] == pytest.approx(FINAL_USD, rel=1e-9)
    second = days["2026-04-12"]
    # msg_B once (the resumed copy is not a new response), the unpriced response counted.
    assert second["responses"] == 2 and second["unpricedResponses"] == 1
    assert second["outputTokens"] == 40 + 20
    assert second["totalCost"] == pytest.approx(SECOND_USD, rel=1e-9)
    assert report["totals"]["responses"] == 3
    # A session's own cost still counts the response it repeats.
    assert _by_native(home)[RESUMED]["cost"]["usd"] == pytest.approx(SECOND_USD, rel=1e-9)


def test_usage_groups_by_local_day_and_filters(home: Path) -> None:
    code, out, err = _ctl(home, "usage", "daily", "--json", TZ="Pacific/Kiritimati")  # UTC+14
    assert code == 0, err
    assert [r["period"] for r in json.loads(out)["daily"]] == ["2026-04-12", "2026-04-13"]
    only = _json(home, "usage", "daily", "--since", "20260412", "--until", "2026-04-12")
    assert [r["period"] for r in only["daily"]] == ["2026-04-12"]
    by_model = _json(home, "usage", "monthly", "--by", "model")
    groups = {r["group"]: r for r in by_model["monthly"]}
    assert set(groups) == {"claude-opus-4-6", "claude-imaginary-9"}
    assert groups["claude-imaginary-9"]["totalCost"] is None
    weekly = _json(home, "usage", "weekly")
    assert [r["period"] for r in weekly["weekly"]] == ["2026-04-06"]  # the Monday


def test_usage_tables_fit_and_mark_unpriced_cost(home: Path) -> None:
    for columns in ("100", "80"):
        code, out, _ = _ctl(home, "usage", "daily", COLUMNS=columns)
        assert code == 0
        assert all(cells(line) <= int(columns) for line in out.splitlines()), out
    lines = out.splitlines()
    assert lines[1].startswith("2026-04-11") and lines[1].endswith("$0.05")
    assert lines[2].startswith("2026-04-12") and lines[2].endswith("$0.03+")
    assert lines[-1] == "+ 1 of 3 responses have no price: not in the cost (skillopsctl status)"


@pytest.mark.parametrize(
    "args",
    [
        ("usage", "daily", "--since", "2026-13-45"),
        ("usage", "daily", "--until", "tomorrow"),
        ("usage", "daily", "--by", "colour"),
        ("usage", "yearly"),
    ],
)
def test_bad_usage_arguments_get_one_line_and_exit_2(home: Path, args: tuple[str, ...]) -> None:
    code, out, err = _ctl(home, *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.strip()


def test_rebuilding_gives_the_same_costs_and_digest(home: Path) -> None:
    before = _json(home, "usage", "session")
    code, out, err = _ctl(home, "rebuild", "--check")
    assert code == 0, out + err
    assert _json(home, "usage", "session") == before


def test_a_price_table_upgrade_replays_the_usage_projection(home: Path) -> None:
    import apsw

    from skillopsd.pricing import PRICES_VERSION
    from skillopsd.projections.usage import Usage, _serial

    assert _serial("0.2.3") == 20_003 and _serial("1.0") == 1_000_000
    assert Usage.version % 100_000_000 == _serial(PRICES_VERSION)  # 2.1 in front of it
    before = _json(home, "usage", "session")
    conn = apsw.Connection(str(db_path(home)))
    try:
        # What another genai-prices version leaves behind: the projection at another version,
        # its rows wrong.
        conn.execute("UPDATE p_usage SET usd = 1000.0")
        conn.execute("UPDATE projection_checkpoints SET version = 7 WHERE name = 'usage'")
    finally:
        conn.close()
    assert _json(home, "usage", "session") == before
    conn = apsw.Connection(str(db_path(home)))
    try:
        row = conn.execute(
            "SELECT version FROM projection_checkpoints WHERE name = 'usage'"
        ).fetchone()
    finally:
        conn.close()
    assert row == (Usage.version,)


def test_a_forgotten_session_leaves_no_cost_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    opus = "claude-opus-4-6"
    _write(
        home,
        KNOWN,
        [
            _user(KNOWN, "u1", "2026-04-11T10:00:00.000Z", "fix it"),
            _assistant(KNOWN, "a1", "2026-04-11T10:00:06.000Z", "msg_A", "req_A", opus, FINAL),
        ],
    )
    run_once(home)
    assert _json(home, "usage", "daily")["totals"]["responses"] == 1
    code, out, err = _ctl(home, "forget", KNOWN, "--reason", "test")
    assert code == 0, out + err
    assert _json(home, "usage", "daily") == {
        "daily": [],
        "totals": {
            "inputTokens": 0,
            "outputTokens": 0,
            "cacheCreationTokens": 0,
            "cacheReadTokens": 0,
            "totalTokens": 0,
            "totalCost": None,
            "unpricedResponses": 0,
            "responses": 0,
        },
    }
    code, out, _ = _ctl(home, "usage", "daily")
    assert code == 0 and out.startswith("no model responses")
