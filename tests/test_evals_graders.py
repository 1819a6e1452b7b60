"""The graders: pure, table-driven over every edge reference/evals.md names, and the one
definition of "tool count" both maxTools uses share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.evals.evidence import Evidence, ToolCall
from skillopsd.evals.graders import grade, matches
from skillopsd.evals.manifest import Grader, Match, parse_manifest
from skillopsd.evals.run import flips, grade_version, run_passed

BASH = ToolCall("Bash", "Bash", "shell")
EDIT = ToolCall("Edit", "Edit", "edit")
READ = ToolCall("Read", "Read", "read")
WEB = ToolCall("WebFetch", "WebFetch", "web")
SKILL = ToolCall("guard-tests", "Skill", "skill")
X_EXEC = ToolCall("exec_command", "exec_command", "shell")
X_PATCH = ToolCall("apply_patch", "apply_patch", "edit")


def ev(
    *,
    outcome: str | None = "success",
    final: str = "",
    calls: tuple[ToolCall, ...] = (),
    skills: tuple[str, ...] = (),
    turns: int = 1,
    duration: int | None = 1000,
    prompt: str = "",
    label: str | None = None,
    agent: str = "claude",
) -> Evidence:
    return Evidence(
        session_id="s",
        agent=agent,
        outcome=outcome,
        final_message=final,
        tool_sequence=list(calls),
        skills=list(skills),
        turns=turns,
        duration_ms=duration,
        first_prompt=prompt,
        label=label,
    )


def g(kind: str, **fields: object) -> Grader:
    return Grader(index=1, type=kind, **fields)  # type: ignore[arg-type]


CASES = [
    # outcome: unknown never equals
    (g("outcome", expect="success"), ev(outcome="success"), True),
    (g("outcome", expect="failure"), ev(outcome="success"), False),
    (g("outcome", expect="success"), ev(outcome=None), False),
    # blocked is the seed's word for the verdict abandoned
    (g("outcome", expect="blocked"), ev(outcome="abandoned"), True),
    (g("outcome", expect="abandoned"), ev(outcome="abandoned"), True),
    (g("outcome", expect="abandoned"), ev(outcome="success"), False),
    # text: case-sensitive substrings; every contains, no reject
    (g("text", contains=["needs-info"]), ev(final="label: needs-info"), True),
    (g("text", contains=["needs-info"]), ev(final="label: Needs-Info"), False),
    (g("text", contains=["a", "b"]), ev(final="a only"), False),
    (g("text", reject=["ready"]), ev(final="ready-to-implement"), False),
    (g("text", reject=["ready"]), ev(final="needs-info"), True),
    (g("text", contains=["x"], reject=["y"]), ev(final=""), False),
    (g("text", reject=["y"]), ev(final=""), True),
    # tool_sequence: ordered, not necessarily contiguous; names, skill names or kinds
    (g("tool_sequence", sequence=["Edit", "Bash"]), ev(calls=(READ, EDIT, BASH)), True),
    (g("tool_sequence", sequence=["Edit", "Bash"]), ev(calls=(EDIT, READ, BASH)), True),
    (g("tool_sequence", sequence=["Edit", "Bash"]), ev(calls=(BASH, EDIT)), False),
    (g("tool_sequence", sequence=["Edit", "Bash"]), ev(calls=(READ, EDIT)), False),
    (g("tool_sequence", sequence=["Edit", "Edit"]), ev(calls=(EDIT,)), False),
    (g("tool_sequence", sequence=["Edit"]), ev(calls=()), False),
    (g("tool_sequence", sequence=["edit", "shell"]), ev(calls=(X_PATCH, X_EXEC)), True),
    (g("tool_sequence", sequence=["edit", "shell"]), ev(calls=(READ, EDIT, BASH)), True),
    (g("tool_sequence", sequence=["skill", "Edit"]), ev(calls=(SKILL, EDIT)), True),
    (g("tool_sequence", sequence=["guard-tests"]), ev(calls=(SKILL,)), True),
    # tool_constraint
    (g("tool_constraint", expect_tools=["Bash"]), ev(calls=(READ, EDIT)), False),
    (g("tool_constraint", expect_tools=["Bash"]), ev(calls=(READ, EDIT, BASH)), True),
    (g("tool_constraint", expect_tools=["shell"]), ev(calls=(X_EXEC,)), True),
    (g("tool_constraint", reject_tools=["WebFetch"]), ev(calls=(WEB,)), False),
    (g("tool_constraint", reject_tools=["web"]), ev(calls=(WEB,)), False),
    (g("tool_constraint", reject_tools=["web"]), ev(calls=(BASH,)), True),
    (g("tool_constraint", max_tools=2), ev(calls=(READ, EDIT)), True),
    (g("tool_constraint", max_tools=2), ev(calls=(READ, EDIT, BASH)), False),
    (g("tool_constraint", max_tools=1), ev(calls=(SKILL, EDIT)), False),
    # skill_invocation
    (g("skill_invocation", expect_skills=["guard-tests"]), ev(skills=("guard-tests",)), True),
    (g("skill_invocation", expect_skills=["guard-tests"]), ev(skills=()), False),
    (g("skill_invocation", reject_skills=["yolo"]), ev(skills=("yolo",)), False),
    (g("skill_invocation", reject_skills=["yolo"]), ev(skills=("guard-tests",)), True),
    # behavior: each ceiling inclusive; a missing duration is not zero
    (g("behavior", max_tools=3), ev(calls=(READ, EDIT, BASH)), True),
    (g("behavior", max_tools=2), ev(calls=(READ, EDIT, BASH)), False),
    (g("behavior", max_turns=2), ev(turns=2), True),
    (g("behavior", max_turns=2), ev(turns=3), False),
    (g("behavior", max_duration_ms=1000), ev(duration=1000), True),
    (g("behavior", max_duration_ms=1000), ev(duration=1001), False),
    (g("behavior", max_duration_ms=1000), ev(duration=None), False),  # not judged
    (g("behavior", max_turns=5), ev(duration=None), True),
    # human_label: the newest standing label
    (g("human_label", expect="good"), ev(label="good"), True),
    (g("human_label", expect="good"), ev(label="bad"), False),
    (g("human_label", expect="good"), ev(label=None), False),  # not judged
]


@pytest.mark.parametrize(("grader", "evidence", "passed"), CASES)
def test_grader_table(grader: Grader, evidence: Evidence, passed: bool) -> None:
    result = grade(grader, evidence)
    assert result.passed is passed
    # A failure says why; a pass is silent. Same input, same answer.
    assert bool(result.detail) is not passed
    assert grade(grader, evidence) == result


NAMES = st.sampled_from([READ, EDIT, BASH, WEB, SKILL, X_EXEC, X_PATCH])


@given(st.lists(NAMES, max_size=8), st.data())
def test_any_subsequence_of_the_calls_passes_tool_sequence(
    calls: list[ToolCall], data: st.DataObject
) -> None:
    keep = data.draw(st.lists(st.booleans(), min_size=len(calls), max_size=len(calls)))
    how = data.draw(st.lists(st.sampled_from(["tool", "kind"]), min_size=len(calls)))
    wanted = [
        (c.tool if h == "tool" else c.kind) or c.name
        for c, k, h in zip(calls, keep, how, strict=False)
        if k
    ]
    if wanted:
        assert grade(g("tool_sequence", sequence=wanted), ev(calls=tuple(calls))).passed
        # Reversed, it passes only if it still is a subsequence (e.g. a palindrome).
        flipped = grade(g("tool_sequence", sequence=wanted[::-1]), ev(calls=tuple(calls)))
        if flipped.passed:
            assert grade(g("tool_sequence", sequence=wanted), ev(calls=tuple(calls[::-1]))).passed


@given(st.lists(NAMES, max_size=12), st.integers(min_value=1, max_value=12))
def test_one_tool_count_for_both_max_tools(calls: list[ToolCall], ceiling: int) -> None:
    evidence = ev(calls=tuple(calls))
    behavior = grade(g("behavior", max_tools=ceiling), evidence).passed
    constraint = grade(g("tool_constraint", max_tools=ceiling), evidence).passed
    assert behavior == constraint == (len(calls) <= ceiling) == (evidence.tools <= ceiling)


@pytest.mark.parametrize(
    ("match", "evidence", "selected"),
    [
        (None, ev(prompt="anything"), True),
        (Match(prompt="triage"), ev(prompt="please triage #4"), True),
        (Match(prompt="triage"), ev(prompt="please Triage #4"), False),
        (Match(prompt="/^please (triage|label)/"), ev(prompt="please label #4"), True),
        (Match(prompt="/^triage/"), ev(prompt="please triage"), False),
        (Match(agent="codex"), ev(agent="codex"), True),
        (Match(agent="codex"), ev(agent="claude"), False),
        (Match(prompt="triage", agent="codex"), ev(prompt="triage", agent="claude"), False),
    ],
)
def test_match_selects_sessions(match: Match | None, evidence: Evidence, selected: bool) -> None:
    assert matches(match, evidence) is selected


SUITE = """\
version: 1
suites:
  - name: triage
    cases:
      - name: needs-info
        match: {prompt: triage}
        graders:
          - {type: text, contains: [needs-info]}
      - name: verifies
        graders:
          - {type: tool_sequence, sequence: [edit, shell]}
"""


def test_a_case_for_one_scenario_does_not_fail_the_others() -> None:
    manifest = parse_manifest(SUITE)
    other = ev(prompt="refactor the parser", final="done", calls=(EDIT, BASH))
    cases = grade_version(manifest, ["triage"], [other])
    by_name = {c.case: c for c in cases}
    # A case that graded nothing is not graded: never passed, and it does not fail the run.
    assert (by_name["needs-info"].graded, by_name["needs-info"].passed) == (0, False)
    assert (by_name["verifies"].graded, by_name["verifies"].passed_sessions) == (1, 1)
    assert run_passed(cases)


def test_a_case_passes_only_when_every_selected_session_passes() -> None:
    manifest = parse_manifest(SUITE)
    good = ev(prompt="triage 1", final="needs-info", calls=(X_PATCH, X_EXEC), agent="codex")
    bad = ev(prompt="triage 2", final="ready", calls=(EDIT, BASH))
    cases = grade_version(manifest, ["triage"], [good, bad])
    needs = next(c for c in cases if c.case == "needs-info")
    assert (needs.graded, needs.passed_sessions, needs.passed) == (2, 1, False)
    assert not run_passed(cases)
    # Nothing graded proves nothing: such a run does not pass.
    assert not run_passed(grade_version(manifest, ["triage"], []))
    before = grade_version(manifest, ["triage"], [good])
    assert [(f.case, f.direction, f.before, f.after) for f in flips(cases, before)] == [
        ("needs-info", "pass→fail", "1/1", "1/2")
    ]
    assert [(f.case, f.direction, f.before, f.after) for f in flips(before, cases)] == [
        ("needs-info", "fail→pass", "1/2", "1/1")
    ]


NOT_JUDGED = [
    (g("human_label", expect="good"), ev(label=None)),
    (g("behavior", max_duration_ms=1000), ev(duration=None)),
]


@pytest.mark.parametrize(("grader", "evidence"), NOT_JUDGED)
def test_missing_evidence_is_not_judged(grader: Grader, evidence: Evidence) -> None:
    result = grade(grader, evidence)
    assert (result.passed, result.judged) == (False, False) and result.detail


def test_a_ceiling_broken_is_a_failure_even_without_a_duration() -> None:
    result = grade(g("behavior", max_turns=1, max_duration_ms=1000), ev(turns=3, duration=None))
    assert (result.passed, result.judged) == (False, True)


LABELLED = """\
version: 1
suites:
  - name: review
    cases:
      - name: approved
        graders:
          - {type: human_label, expect: good}
      - name: approved-and-verified
        graders:
          - {type: human_label, expect: good}
          - {type: tool_sequence, sequence: [edit, shell]}
      - name: mostly
        min_pass_rate: 0.5
        graders:
          - {type: tool_sequence, sequence: [edit, shell]}
"""


def test_unlabelled_sessions_are_not_graded_and_a_definite_failure_still_fails() -> None:
    manifest = parse_manifest(LABELLED)
    unlabelled_ok = ev(calls=(EDIT, BASH))
    unlabelled_bad = ev(calls=(BASH, EDIT))
    cases = {c.case: c for c in grade_version(manifest, ["review"], [unlabelled_ok])}
    assert (cases["approved"].graded, cases["approved"].not_graded) == (0, 1)
    assert not cases["approved"].passed and cases["approved"].results == []
    assert cases["approved"].not_graded_reasons == ["not labelled"]
    assert (cases["approved-and-verified"].graded, cases["approved-and-verified"].passed) == (
        0,
        False,
    )
    # With no label, a session that broke another grader of the case is still a failure.
    cases = {c.case: c for c in grade_version(manifest, ["review"], [unlabelled_bad])}
    both = cases["approved-and-verified"]
    assert (both.graded, both.passed_sessions, both.not_graded, both.passed) == (1, 0, 0, False)
    labelled = ev(calls=(EDIT, BASH), label="good")
    cases = {c.case: c for c in grade_version(manifest, ["review"], [labelled, unlabelled_ok])}
    assert (cases["approved"].graded, cases["approved"].passed, cases["approved"].not_graded) == (
        1,
        True,
        1,
    )


@pytest.mark.parametrize(
    ("passing", "failing", "rate", "passed"),
    [
        (1, 1, 0.5, True),
        (1, 2, 0.5, False),
        (2, 1, 0.66, True),
        (2, 1, 0.67, False),
        (0, 0, 0.0, False),
        (0, 3, 0.0, True),
        (3, 0, 1.0, True),
        (2, 1, 1.0, False),
    ],
)
def test_min_pass_rate(passing: int, failing: int, rate: float, passed: bool) -> None:
    text = LABELLED.replace("min_pass_rate: 0.5", f"min_pass_rate: {rate}")
    manifest = parse_manifest(text)
    sessions = [ev(calls=(EDIT, BASH))] * passing + [ev(calls=(BASH, EDIT))] * failing
    case = next(c for c in grade_version(manifest, ["review"], sessions) if c.case == "mostly")
    assert (case.graded, case.passed_sessions, case.min_pass_rate) == (
        passing + failing,
        passing,
        rate,
    )
    assert case.passed is passed


def test_version_groups_sort_by_number() -> None:
    from skillopsd.cli.evals import tag_order

    tags = ["v10", "v2", None, "v1", "v?", "v9"]
    assert sorted(tags, key=tag_order) == ["v1", "v2", "v9", "v10", None, "v?"]
