"""evals.yaml validation: every rejection reference/evals.md lists names file, suite, case,
grader index and field; the reference example and the additions (match, kinds, human_label)
load."""

from __future__ import annotations

from pathlib import Path

import pytest

from skillopsd.evals.manifest import ManifestError, load_manifest, parse_manifest, suite_hash

REFERENCE = """\
version: 1
suites:
  - name: triage-correctness
    cases:
      - name: ambiguous-feature-needs-info
        graders:
          - type: outcome
            expect: success
          - type: text
            on: final_message
            contains: ["needs-info"]
            reject: ["ready-to-implement"]
  - name: verifies-changes
    cases:
      - name: edits-then-runs-tests
        graders:
          - {type: skill_invocation, expectSkills: [guard-tests]}
          - {type: tool_sequence, sequence: [Edit, Bash]}
          - {type: tool_constraint, expectTools: [Bash], rejectTools: [WebFetch]}
          - {type: behavior, maxTools: 10}
"""


def test_the_reference_example_loads_with_on_kept_as_a_key() -> None:
    m = parse_manifest(REFERENCE, "skills/t/evals.yaml")
    assert m.suite_names == ["triage-correctness", "verifies-changes"]
    text = m.suites[0].cases[0].graders[1]
    assert (text.type, text.on, text.contains, text.reject, text.index) == (
        "text",
        "final_message",
        ["needs-info"],
        ["ready-to-implement"],
        2,
    )
    assert [g.type for g in m.suites[1].cases[0].graders] == [
        "skill_invocation",
        "tool_sequence",
        "tool_constraint",
        "behavior",
    ]
    assert m.suite_hash == suite_hash(REFERENCE) and m.text == REFERENCE


def test_match_kinds_and_human_label_load() -> None:
    m = parse_manifest(
        "version: 1\nsuites:\n- name: s\n  cases:\n  - name: c\n    match: {prompt: '/tri?age/',"
        " agent: codex}\n    graders:\n    - {type: tool_sequence, sequence: [edit, shell]}\n"
        "    - {type: human_label, expect: good, name: reviewer}\n"
    )
    case = m.suites[0].cases[0]
    assert case.match is not None and case.match.prompt == "/tri?age/"
    assert case.graders[1].name == "reviewer" and case.graders[1].expect == "good"


def _doc(grader: str = "{type: outcome, expect: success}", case_extra: str = "") -> str:
    return (
        "version: 1\nsuites:\n- name: s1\n  cases:\n  - name: c1\n"
        f"{case_extra}    graders:\n    - {{type: outcome, expect: success}}\n    - {grader}\n"
    )


# (document, suite, case, grader index, field, words in the message)
REJECTIONS = [
    (_doc("{type: outcomes, expect: success}"), "s1", "c1", 2, "type", "unknown type"),
    (_doc("{type: outcome, expects: success}"), "s1", "c1", 2, "expects", "unknown key"),
    (_doc("{type: text, on: final_message}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: text, contains: []}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: outcome}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: tool_sequence}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: tool_constraint}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: skill_invocation}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: behavior}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: human_label}"), "s1", "c1", 2, None, "asserts nothing"),
    (_doc("{type: text, on: message, contains: [x]}"), "s1", "c1", 2, "on", "final_message"),
    (
        _doc("{type: outcome, expect: passed}"),
        "s1",
        "c1",
        2,
        "expect",
        "must be one of success|failure|abandoned",
    ),
    (_doc("{type: human_label, expect: great}"), "s1", "c1", 2, "expect", "good|bad"),
    (_doc("{type: behavior, maxTools: 0}"), "s1", "c1", 2, "maxTools", "positive"),
    (_doc("{type: behavior, maxTurns: -1}"), "s1", "c1", 2, "maxTurns", "positive"),
    (_doc("{type: behavior, maxDurationMs: 0}"), "s1", "c1", 2, "maxDurationMs", "positive"),
    (_doc("{type: tool_constraint, maxTools: -3}"), "s1", "c1", 2, "maxTools", "positive"),
    (_doc("{type: behavior, maxTools: true}"), "s1", "c1", 2, "maxTools", "whole number"),
    (_doc("{type: text, contains: ['']}"), "s1", "c1", 2, "contains", "empty string"),
    (_doc("{type: text, reject: [' ']}"), "s1", "c1", 2, "reject", "empty string"),
    (_doc("{type: tool_sequence, sequence: [Edit, '']}"), "s1", "c1", 2, "sequence", "empty"),
    (_doc("{type: tool_constraint, expectTools: ['']}"), "s1", "c1", 2, "expectTools", "empty"),
    (_doc("{type: skill_invocation, rejectSkills: ['']}"), "s1", "c1", 2, "rejectSkills", "empty"),
    (_doc("{type: text, contains: needs-info}"), "s1", "c1", 2, "contains", "list of strings"),
    (_doc(case_extra="    match: {prompt: '/(/'}\n"), "s1", "c1", None, "match.prompt", "regular"),
    (_doc(case_extra="    match: {title: x}\n"), "s1", "c1", None, "title", "unknown key"),
    (_doc(case_extra="    match: {agent: vim}\n"), "s1", "c1", None, "match.agent", "one of"),
    (_doc(case_extra="    matches: {prompt: x}\n"), "s1", "c1", None, "matches", "unknown key"),
    # a misspelt kind is an error naming the field, never a grader that silently never matches
    (_doc("{type: tool_sequence, sequence: [edit, shel]}"), "s1", "c1", 2, "sequence", "'shell'"),
    (_doc("{type: tool_constraint, expectTools: [Shell]}"), "s1", "c1", 2, "expectTools", "kind"),
    (_doc("{type: tool_constraint, rejectTools: [webb]}"), "s1", "c1", 2, "rejectTools", "'web'"),
    (_doc("{type: tool_sequence, sequence: [edits]}"), "s1", "c1", 2, "sequence", "'edit'"),
    (_doc(case_extra="    min_pass_rate: 1.5\n"), "s1", "c1", None, "min_pass_rate", "0 to 1"),
    (_doc(case_extra="    min_pass_rate: -0.1\n"), "s1", "c1", None, "min_pass_rate", "0 to 1"),
    (_doc(case_extra="    min_pass_rate: most\n"), "s1", "c1", None, "min_pass_rate", "number"),
    (_doc(case_extra="    min_pass_rate: true\n"), "s1", "c1", None, "min_pass_rate", "number"),
    (_doc(case_extra="    minPassRate: 0.5\n"), "s1", "c1", None, "minPassRate", "unknown key"),
]


@pytest.mark.parametrize(("text", "suite", "case", "grader", "field", "words"), REJECTIONS)
def test_every_rejection_names_where_and_what(
    text: str, suite: str, case: str, grader: int | None, field: str | None, words: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "skills/t/evals.yaml")
    err = info.value
    assert (err.file, err.suite, err.case, err.grader, err.field) == (
        "skills/t/evals.yaml",
        suite,
        case,
        grader,
        field,
    )
    message = str(err)
    assert words in message and "skills/t/evals.yaml" in message and "\n" not in message
    assert f"suite {suite!r}" in message and f"case {case!r}" in message
    if grader is not None:
        assert f"grader {grader}" in message


@pytest.mark.parametrize(
    ("text", "suite", "case", "field", "words"),
    [
        ("version: 2\nsuites: []\n", None, None, "version", "version must be 1"),
        ("suites: []\n", None, None, "version", "version must be 1"),
        ("version: 1\nsuites: []\n", None, None, "suites", "at least one suite"),
        ("version: 1\nsuite: []\n", None, None, "suite", "unknown key"),
        ("version: 1\nsuites:\n- cases: []\n", None, None, "name", "non-empty name"),
        ("version: 1\nsuites:\n- {name: ' ', cases: []}\n", None, None, "name", "non-empty"),
        ("version: 1\nsuites:\n- {name: a, cases: []}\n", "a", None, "cases", "at least one case"),
        ("version: 1\nsuites:\n- {name: a, cases: [{name: c}]}\n", "a", "c", "graders", "grader"),
        (
            "version: 1\nsuites:\n- {name: a, cases: [{name: c, graders: []}]}\n",
            "a",
            "c",
            "graders",
            "at least one grader",
        ),
        (
            "version: 1\nsuites:\n- {name: a, cases: [{graders: [{type: outcome,"
            " expect: success}]}]}\n",
            "a",
            None,
            "name",
            "non-empty name",
        ),
        (
            "version: 1\nsuites:\n- {name: a, cases: [{name: c, graders: [{type: outcome,"
            " expect: success}]}]}\n- {name: a, cases: [{name: c, graders: [{type: outcome,"
            " expect: success}]}]}\n",
            None,
            None,
            "name",
            "duplicate suite name 'a'",
        ),
        (
            "version: 1\nsuites:\n- {name: a, cases: [{name: c, graders: [{type: outcome,"
            " expect: success}]}, {name: c, graders: [{type: outcome, expect: failure}]}]}\n",
            "a",
            None,
            "name",
            "duplicate case name 'c'",
        ),
        ("version: 1\nsuites: [\n", None, None, None, "not valid YAML at line"),
        ("- just\n- a list\n", None, None, None, "must be a mapping"),
    ],
)
def test_structure_rejections(
    text: str, suite: str | None, case: str | None, field: str | None, words: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "e.yaml")
    err = info.value
    assert (err.suite, err.case, err.field) == (suite, case, field)
    assert words in str(err) and str(err).startswith("e.yaml")


def test_unreadable_file_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "evals.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "entry",
    [
        "Bash",
        "exec_command",
        "mcp__github__create_issue",
        "guard-tests",
        "triage",
        "shell",
        "read",
        "Read",
        "skill",
        "update_plan",
    ],
)
def test_tool_names_skill_names_and_kinds_are_accepted(entry: str) -> None:
    m = parse_manifest(_doc(f"{{type: tool_sequence, sequence: [{entry}]}}"))
    assert m.suites[0].cases[0].graders[1].sequence == [entry]


def test_min_pass_rate_loads_and_defaults_to_one() -> None:
    m = parse_manifest(_doc(case_extra="    min_pass_rate: 0.8\n"))
    assert m.suites[0].cases[0].min_pass_rate == 0.8
    assert parse_manifest(_doc()).suites[0].cases[0].min_pass_rate == 1.0
    assert (
        parse_manifest(_doc(case_extra="    min_pass_rate: 0\n")).suites[0].cases[0].min_pass_rate
        == 0.0
    )


# --- run: tasks eval replay gives the agent ------------------------------------------------

_RUN_CASE = (
    "version: 1\nsuites:\n- name: s\n  cases:\n  - name: c\n    run: {run}\n"
    "    graders:\n    - {{type: outcome, expect: success}}\n"
)


def test_run_loads_with_defaults_and_every_field() -> None:
    m = parse_manifest(_RUN_CASE.format(run="{prompt: 'fix the bug'}"))
    run = m.suites[0].cases[0].run
    assert run is not None
    assert (run.prompt, run.fixture, run.timeout, run.setup) == ("fix the bug", None, 600.0, [])
    m = parse_manifest(
        _RUN_CASE.format(
            run="{prompt: p, fixture: fixtures/app, timeout: 2.5, setup: ['git init -q', 'echo x']}"
        )
    )
    run = m.suites[0].cases[0].run
    assert run is not None
    assert (run.fixture, run.timeout, run.setup) == ("fixtures/app", 2.5, ["git init -q", "echo x"])
    assert parse_manifest(REFERENCE).suites[0].cases[0].run is None


@pytest.mark.parametrize(
    ("run", "field", "words"),
    [
        ("[]", "run", "must be a mapping"),
        ("{fixture: f}", "run.prompt", "non-empty"),
        ("{prompt: ''}", "run.prompt", "non-empty"),
        ("{prompt: '   '}", "run.prompt", "non-empty"),
        ("{prompt: 3}", "run.prompt", "non-empty"),
        ("{prompt: p, promt: q}", "run.promt", "unknown key"),
        ("{prompt: p, fixture: ''}", "run.fixture", "folder path"),
        ("{prompt: p, fixture: [a]}", "run.fixture", "folder path"),
        ("{prompt: p, timeout: 0}", "run.timeout", "more than 0"),
        ("{prompt: p, timeout: -5}", "run.timeout", "more than 0"),
        ("{prompt: p, timeout: 100000}", "run.timeout", "at most"),
        ("{prompt: p, timeout: ten}", "run.timeout", "number of seconds"),
        ("{prompt: p, timeout: true}", "run.timeout", "number of seconds"),
        ("{prompt: p, setup: 'make'}", "run.setup", "list of strings"),
        ("{prompt: p, setup: ['']}", "run.setup", "empty string"),
        ("{prompt: p, setup: [1]}", "run.setup", "list of strings"),
    ],
)
def test_a_bad_run_is_one_line_naming_file_suite_case_and_field(
    run: str, field: str, words: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_RUN_CASE.format(run=run), "sk/evals.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"sk/evals.yaml, suite 's', case 'c', field '{field}': ")
    assert words in message
    assert caught.value.field == field
