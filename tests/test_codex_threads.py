"""Codex spawn_agent child threads: nested under the spawning call, replay skipped, merged."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive import SourceLines, derive_session

PARENT = "019d7d08-46c9-7f73-affe-4e6ca9852d56"
CHILD = "019d7e3d-0164-79d1-af76-e4ee6689b94f"
PARENT_TURN = "019d7d08-f1d2-78a1-ae52-df8e21f9b394"
CHILD_TURN = "019d7e3d-018b-70c0-afd0-371649720dbc"


def _meta(thread: str, parent: str | None = None) -> dict:
    payload: dict = {"id": thread, "cwd": "/w", "originator": "codex-tui", "source": "cli"}
    if parent:
        payload["source"] = {"subagent": {"thread_spawn": {"parent_thread_id": parent, "depth": 1}}}
        payload["forked_from_id"] = parent
    return {"timestamp": "2026-04-11T20:00:00.000Z", "type": "session_meta", "payload": payload}


def _item(payload: dict, ts: str = "2026-04-11T20:00:01.000Z") -> dict:
    return {"timestamp": ts, "type": "response_item", "payload": payload}


def _event(payload: dict, ts: str = "2026-04-11T20:00:01.000Z") -> dict:
    return {"timestamp": ts, "type": "event_msg", "payload": payload}


def _parent_history() -> list[dict]:
    return [
        _event({"type": "task_started", "turn_id": PARENT_TURN}),
        {
            "timestamp": "2026-04-11T20:00:01.000Z",
            "type": "turn_context",
            "payload": {"turn_id": PARENT_TURN, "model": "gpt-5.4"},
        },
        _item(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "review the repo"}],
            }
        ),
        _item(
            {
                "type": "function_call",
                "name": "exec_command",
                "call_id": "call_p1",
                "arguments": json.dumps({"cmd": "ls"}),
            }
        ),
        _item(
            {
                "type": "function_call_output",
                "call_id": "call_p1",
                "output": "Process exited with code 0\nOutput:\nREADME.md",
            }
        ),
        _item(
            {
                "type": "function_call",
                "name": "spawn_agent",
                "call_id": "call_spawn",
                "arguments": json.dumps({"message": "look at syncer.go"}),
            }
        ),
    ]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _files(tmp_path: Path) -> tuple[Path, Path]:
    parent = _write(
        tmp_path / f"rollout-2026-04-11T20-00-00-{PARENT}.jsonl",
        [
            _meta(PARENT),
            *_parent_history(),
            _item(
                {
                    "type": "function_call_output",
                    "call_id": "call_spawn",
                    "output": json.dumps({"agent_id": CHILD, "nickname": "Wegener"}),
                }
            ),
            _item(
                {
                    "type": "function_call",
                    "name": "wait_agent",
                    "call_id": "call_wait",
                    "arguments": json.dumps({"targets": [CHILD]}),
                }
            ),
            _item({"type": "function_call_output", "call_id": "call_wait", "output": "{}"}),
            _event({"type": "task_complete", "turn_id": PARENT_TURN}),
        ],
    )
    child = _write(
        tmp_path / f"rollout-2026-04-11T20-30-20-{CHILD}.jsonl",
        [
            _meta(CHILD, PARENT),
            _meta(PARENT),  # a forked child replays its parent's history first
            *_parent_history(),
            _event({"type": "task_started", "turn_id": CHILD_TURN}, "2026-04-11T20:30:21.000Z"),
            {
                "timestamp": "2026-04-11T20:30:21.000Z",
                "type": "turn_context",
                "payload": {"turn_id": CHILD_TURN, "model": "gpt-5.4-mini"},
            },
            _item(
                {
                    "type": "function_call",
                    "name": "exec_command",
                    "call_id": "call_c1",
                    "arguments": json.dumps({"cmd": "go test ./..."}),
                },
                "2026-04-11T20:30:22.000Z",
            ),
            _item(
                {
                    "type": "function_call_output",
                    "call_id": "call_c1",
                    "output": "Process exited with code 1\nOutput:\nFAIL",
                },
                "2026-04-11T20:30:23.000Z",
            ),
        ],
    )
    return parent, child


def _lines(path: Path) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    for line in path.read_bytes().split(b"\n")[:-1]:
        out.append((offset, line))
        offset += len(line) + 1
    return out


def test_child_thread_nests_under_spawn_call_without_its_replay(tmp_path: Path) -> None:
    parent, child = _files(tmp_path)
    d = derive_session(
        "codex",
        PARENT,
        [
            SourceLines("p", str(parent), PARENT, "", _lines(parent)),
            SourceLines("c", str(child), CHILD, PARENT, _lines(child)),
        ],
    )
    by_id = {s.span_id: s for s in d.spans}
    calls = [s.attributes.get("gen_ai.tool.call.id") for s in d.spans if s.kind == "TOOL"]
    assert sorted(calls) == ["call_c1", "call_p1", "call_spawn", "call_wait"]  # once each
    (spawn,) = [s for s in d.spans if s.name == "spawn_agent"]
    (child_call,) = [s for s in d.spans if s.attributes.get("gen_ai.tool.call.id") == "call_c1"]
    assert child_call.outcome == "failure"
    node = child_call
    while node.parent_span_id and node.span_id != spawn.span_id:
        node = by_id[node.parent_span_id]
    assert node.span_id == spawn.span_id
    assert d.session.turns == 1 and d.session.tools == 4


def test_child_captured_first_is_merged_when_its_parent_arrives(tmp_path: Path) -> None:
    parent, child = _files(tmp_path)
    db = str(tmp_path / "s.db")
    runner = CliRunner()

    def sessions() -> list[dict]:
        result = runner.invoke(cli, ["--db", db, "sessions", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert runner.invoke(cli, ["--db", db, "ingest", str(child)]).exit_code == 0
    alone = sessions()
    assert [s["native_session_id"] for s in alone] == [CHILD]
    assert alone[0]["parent_session_id"] == PARENT
    assert runner.invoke(cli, ["--db", db, "ingest", str(parent)]).exit_code == 0
    merged = sessions()
    assert [s["native_session_id"] for s in merged] == [PARENT]
    assert merged[0]["outcomes"] == {"success": 3, "failure": 1, "blocked": 0, "unknown": 0}
    show = runner.invoke(cli, ["--db", db, "session", "show", CHILD, "--json"])
    assert show.exit_code == 0  # the child's id finds the session it is part of now
    assert json.loads(show.output)["session"]["native_session_id"] == PARENT
    check = runner.invoke(cli, ["--db", db, "rebuild", "--check"])
    assert check.exit_code == 0, check.output
