"""Seeing versions and comparing with not loading the skill, end to end through the real
``skillopsd --once`` and ``skillopsctl``: ``skill show NAME vN --body``, ``skill diff``,
version dates from the transcripts (not capture time), one vocabulary in ``skill show`` and
``skill versions``, the observational baseline row and the skill-scoped figures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ._skill_sessions import T0
from .test_skills_acceptance import Home

pytestmark = pytest.mark.slow

V1 = "Label each issue.\nAsk nothing.\nAnswer in one word."
V2 = "Label each issue.\nAsk for info when ambiguous.\nAnswer in one word."


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path)
    h.skill("triage", None)
    h.skill("other", None)
    h.session("triage", V1, final="ready-to-implement", tools=["Read"])  # T0+1h
    h.session("triage", V2, final="needs-info", tools=["Read", "Edit", "Bash"])  # T0+2h
    h.session("triage", V2, final="needs-info", tools=["Read", "Grep"])  # T0+3h
    # Same project, same period, did not load triage: the baseline.
    h.session("other", "Another skill.", final="done", tools=["Read"])  # T0+4h
    h.session("triage", V2, final="needs-info", tools=["Read"])  # T0+5h
    h.capture()
    return h


def test_versions_are_dated_by_the_first_session_that_loaded_them(home: Home) -> None:
    report = home.json("skill", "show", "triage")
    by_tag = {v["tag"]: v for v in report["versions"]}
    # The Skill call is a few seconds into each session (the transcript's own times).
    for tag, hours in (("v1", 1), ("v2", 2)):
        first = by_tag[tag]["first_loaded"]
        start = (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")
        assert first.startswith(start), (tag, first)
        # ... while the version was captured today.
        assert by_tag[tag]["first_seen"][:4] != "2026" or by_tag[tag]["first_seen"] > first
    shown = home.ctl("skill", "show", "triage", "--utc")
    assert "first loaded (UTC)" in shown and "2026-06-01 11:00" in shown, shown
    versions = home.json("skill", "versions", "triage")
    assert {v["tag"]: v["first_loaded"][:16] for v in versions["versions"]} == {
        "v1": "2026-06-01T10:00",
        "v2": "2026-06-01T11:00",
    }


def test_show_and_versions_count_sessions_alike_and_name_executions(home: Home) -> None:
    shown = {v["tag"]: len(v["sessions"]) for v in home.json("skill", "show", "triage")["versions"]}
    listed = home.json("skill", "versions", "triage")["versions"]
    assert shown == {"v1": 1, "v2": 3}
    assert {v["tag"]: v["sessions"] for v in listed} == shown
    assert all(v["executions"] == 0 for v in listed)  # not managed: nothing recorded for a test
    text = home.ctl("skill", "versions", "triage")
    assert "sessions" in text and "executions" in text and "runs" not in text.split("\n")[1]


def test_the_baseline_is_the_same_projects_over_the_same_period(home: Home) -> None:
    report = home.json("skill", "show", "triage")
    base = report["baseline"]
    assert base["sessions"] == 1 and len(base["projects"]) == 1
    assert base["since"][:13] == "2026-06-01T10" and base["until"][:13] == "2026-06-01T14"
    assert base["verdicts"]["success"]["n"] == 1
    # Its cost per session is the same figure `sessions` gives the session that did not load it.
    other = [s for s in home.json("sessions") if "triage" not in s["skills"]]
    assert len(other) == 1
    priced = other[0]["cost"]["usd"] is not None and not other[0]["cost"]["unpriced"]
    assert base["cost"]["n"] == (1 if priced else 0)
    if priced:
        assert base["cost"]["median"] == pytest.approx(other[0]["cost"]["usd"])
    assert "not loading it (observational)" in report["reading"]
    text = home.ctl("skill", "show", "triage")
    assert "observational" in text and "\nwithout " in text
    # A session of another project, or outside the period, is not in the baseline.
    home.sessions = 10  # T0+11h: after the last triage session
    home.session("other", "Another skill.", final="done", tools=["Read"])
    home.capture()
    assert home.json("skill", "show", "triage")["baseline"]["sessions"] == 1


def test_skill_scoped_figures_count_from_the_load(home: Home) -> None:
    report = home.json("skill", "show", "triage")
    v2 = next(v for v in report["versions"] if v["tag"] == "v2")
    # Tool calls (as sessions counts them); every one of these came after the load.
    assert v2["calls"]["mean"] == pytest.approx((3 + 2 + 1) / 3)
    assert v2["scoped"]["calls"]["mean"] == pytest.approx((3 + 2 + 1) / 3)
    assert v2["scoped"]["calls"]["n"] == 3
    assert v2["scoped"]["duration_ms"]["mean"] <= v2["duration_ms"]["mean"]
    if v2["scoped"]["tokens"]["mean"] is not None:
        assert v2["scoped"]["tokens"]["mean"] <= v2["tokens"]["mean"]
    text = home.ctl("skill", "show", "triage")
    assert "calls*" in text and "from the skill's" in text


def test_show_a_version_its_body_and_a_diff(home: Home) -> None:
    assert home.ctl("skill", "show", "triage", "v1", "--body").rstrip("\n") == V1
    body = home.json("skill", "show", "triage", "v2", "--body")
    assert (body["tag"], body["body"]) == ("v2", V2)
    one = home.ctl("skill", "show", "triage", "v2")
    assert "v2" in one and "\nv1 " not in one and "without" not in one
    diff = home.ctl("skill", "diff", "triage", "v1", "v2")
    assert diff.splitlines()[:2] == [
        f"--- triage v1 ({_hash(home, 'v1')[:12]})",
        f"+++ triage v2 ({_hash(home, 'v2')[:12]})",
    ]
    assert "-Ask nothing.\n+Ask for info when ambiguous.\n" in diff
    assert " Label each issue.\n" in diff
    assert home.ctl("skill", "diff", "triage", "v2", "v2") == ""
    # By hash prefix too.
    assert "-Ask nothing." in home.ctl("skill", "diff", "triage", _hash(home, "v1")[:8], "v2")


def test_version_errors_are_one_line(home: Home) -> None:
    out = home.ctl("skill", "show", "triage", "v9", code=1)
    assert "no version 'v9' of skill 'triage' (versions: v1, v2)" in out
    out = home.ctl("skill", "diff", "triage", "v1", "nope", code=1)
    assert "no version 'nope'" in out
    out = home.ctl("skill", "show", "triage", "--body", code=2)
    assert "--body needs a version" in out
    home.ctl("skill", "show", "nothing-loaded-this", code=1)


def _hash(home: Home, tag: str) -> str:
    versions = home.json("skill", "show", "triage")["versions"]
    return str(next(v["content_hash"] for v in versions if v["tag"] == tag))


def _cut_after_last_call(home: Home, native: str) -> None:
    """End the transcript with its last tool call pending, as a file copied while a push
    waited for approval ends: its verdict is ``unfinished``."""
    path = home.home / ".claude" / "projects" / "-work-app" / f"{native}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if b'"tool_use"' in line)
    path.write_bytes(b"".join(lines[: last + 1]))


def test_unfinished_sessions_are_in_no_success_rate(tmp_path: Path) -> None:
    """Review K3: two unfinished sessions made v2 "1/3 33%" while the A/B test's executions
    leave them out; every rate now counts the sessions with an outcome (verdict.COUNTED)."""
    h = Home(tmp_path)
    h.skill("triage", None)
    h.skill("other", None)
    h.session("triage", V1, final="ready-to-implement", tools=["Read"])
    # Same project, within the period: the baseline.
    h.session("other", "Another skill.", final="done", tools=["Read"])
    cut_other = h.session("other", "Another skill.", final="done", tools=["Read", "Bash"])
    _cut_after_last_call(h, cut_other)
    h.session("triage", V2, final="needs-info", tools=["Read"])
    cut = h.session("triage", V2, final="needs-info", tools=["Read", "Bash"])
    _cut_after_last_call(h, cut)
    h.capture()
    verdicts = {s["native_session_id"]: s["verdict"] for s in h.json("sessions")}
    assert verdicts[cut] == verdicts[cut_other] == "unfinished", verdicts

    report = h.json("skill", "show", "triage")
    v2 = next(v for v in report["versions"] if v["tag"] == "v2")
    assert len(v2["sessions"]) == 2 and v2["uncounted"] == 1
    assert set(v2["verdicts"]) == {"success", "failure", "abandoned"}
    assert (v2["verdicts"]["success"]["k"], v2["verdicts"]["success"]["n"]) == (1, 1)
    base = report["baseline"]
    assert base["sessions"] == 2 and base["uncounted"] == 1
    assert (base["verdicts"]["success"]["k"], base["verdicts"]["success"]["n"]) == (1, 1)
    text = h.ctl("skill", "show", "triage")
    assert "1/1 100%" in text and "1/2 50%" not in text
    assert "unfinished and no verdict are not counted, as in the A/B test" in " ".join(
        line.strip() for line in text.splitlines()
    )
    assert "not counted (unfinished or no verdict): v2 1 session, without 1 session" in text
    # skills: the same rate, over the same sessions.
    [triage] = [s for s in h.json("skills") if s["skill"] == "triage"]
    assert triage["sessions"] == 3 and triage["verdicts"]["unfinished"] == 1
    assert (triage["success"]["k"], triage["success"]["n"]) == (2, 2)
