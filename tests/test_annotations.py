"""Annotations: validated before anything is appended, shown beside the verdict, retractable,
and untouched by a rederive at a new deriver version and by a rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive import DERIVER_VERSION
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog
from skillopsd.projections import engine_for

from ._skill_sessions import T0, claude_session, skill_dir

HUMAN = """\
version: 1
suites:
  - name: reviewed
    cases:
      - name: reviewer-agrees
        graders:
          - {type: human_label, expect: good}
"""


@pytest.fixture
def ingested(tmp_path: Path) -> tuple[Path, list[str]]:
    home = tmp_path / "home"
    directory = skill_dir(tmp_path / "skills", "triage", "x", HUMAN)
    files = [
        claude_session(
            home,
            session=f"{n:08d}-0000-4000-8000-000000000000",
            skill="triage",
            skill_dir=directory,
            body=f"Label issues v{n}",
            prompt="triage issue",
            tools=["Read", "Bash"],
            final="needs-info",
            start=T0.replace(hour=n),
        )
        for n in (1, 2)
    ]
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", *map(str, files)])
    assert result.exit_code == 0, result.output
    sessions = _json(db, "sessions")
    return db, [s["session_id"] for s in sorted(sessions, key=lambda s: s["started_at"])]


def _run(db: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def _json(db: Path, *args: str) -> Any:
    result = _run(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _head(db: Path) -> int:
    database = Database.open(db)
    try:
        return EventLog(database).head()
    finally:
        database.close()


def _labels(db: Path) -> dict[str, str | None]:
    return {s["session_id"]: s["label"] for s in _json(db, "sessions")}


def test_bad_input_is_one_line_exit_1_and_appends_nothing(ingested: tuple[Path, list[str]]) -> None:
    db, (s1, s2) = ingested
    show = _json(db, "session", "show", s2)
    other_span = show["spans"][0]["span_id"]
    head = _head(db)
    for args, code, words in [
        (["annotate", "nosuchsession", "--label", "bad"], 1, "unknown session"),
        (["annotate", s1, "--label", "bad", "--skill", "other"], 1, "did not load skill"),
        (["annotate", s1, "--label", "bad", "--span", other_span], 1, "is not in session"),
        (["annotate", "--retract", "feedfacefeed", "--reason", "x"], 1, "unknown annotation"),
        (["annotate", "--retract", "feedfacefeed"], 2, "needs --reason"),
        (["annotate", s1], 2, "--label"),
        (["annotate", s1, "--label", "great"], 2, "great"),
    ]:
        result = _run(db, *args)
        assert result.exit_code == code, (args, result.output)
        assert words in result.output and "Traceback" not in result.output
        assert _head(db) == head, args


def test_labels_beside_verdicts_survive_rederive_and_rebuild(
    ingested: tuple[Path, list[str]],
) -> None:
    db, (s1, s2) = ingested
    span = next(s for s in _json(db, "session", "show", s1)["spans"] if s["kind"] == "TOOL")
    good = _json(db, "annotate", s1, "--label", "good", "--author", "ana")
    bad = _json(
        db,
        "annotate",
        s1,
        "--label",
        "bad",
        "--skill",
        "triage",
        "--span",
        span["span_id"][:10],
        "--note",
        "ran the wrong test",
    )
    assert bad["span_id"] == span["span_id"] and bad["skill"] == "triage"
    assert _labels(db) == {s1: "bad", s2: None}
    verdicts = {s["session_id"]: s["verdict"] for s in _json(db, "sessions")}
    assert verdicts[s1] == "success"  # the label never changes the derived verdict

    retracted = _json(db, "annotate", "--retract", bad["annotation_id"], "--reason", "misread")
    assert retracted["retracted"] == bad["annotation_id"]
    assert _labels(db) == {s1: "good", s2: None}
    assert _run(db, "annotate", "--retract", bad["annotation_id"], "--reason", "x").exit_code == 1
    listed = _json(db, "annotations", "--skill", "triage")
    assert [(a["annotation_id"], a["retracted"]) for a in listed] == [
        (bad["annotation_id"], True),
        (good["annotation_id"], False),
    ]
    # The human_label grader reads the newest standing label.
    graded = CliRunner().invoke(cli, ["--db", str(db), "eval", "run", "triage", "--json"])
    by_session = {
        s: (v["passed"], v["graded"])
        for v in json.loads(graded.output)["versions"]
        for s in v["sessions"]
    }
    # s2 has no label: its version is not graded, which is no failure (exit 0, not 1).
    assert by_session == {s1: (True, True), s2: (False, False)} and graded.exit_code == 0

    before = (_json(db, "annotations"), _labels(db), _json(db, "lineage", "triage"))
    database = Database.open(db)
    deriver = SessionDeriver(database, deriver_version=DERIVER_VERSION + 1)
    assert deriver.derive(deriver.stale()).appended > 0
    engine_for(database).catch_up()
    database.close()
    rederived = [s["deriver_version"] for s in _json(db, "sessions")]
    assert rederived == [DERIVER_VERSION + 1] * 2
    assert (_json(db, "annotations"), _labels(db), _json(db, "lineage", "triage")) == before
    assert _run(db, "rebuild").exit_code == 0
    assert (_json(db, "annotations"), _labels(db), _json(db, "lineage", "triage")) == before
