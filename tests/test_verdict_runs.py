"""Test and lint runs in verdicts (reviewer findings F21 and F20).

F21: a runner whose exit status the script hid (``| tail``, ``| tee``, ``; echo done``,
``|| true``) is judged by its own summary in the output: a failure summary fails the call, a
passing one passes it, and an output that says neither leaves its outcome unknown (``?``),
never a success. F20: a failed run is resolved only by a later pass that covers what failed
(the same or wider targets, no narrower selection, or the failing tests named); a narrower pass
is named in the reason.

The sessions are written where Claude Code and Codex write them under a temporary HOME; a real
``skillopsd --once`` captures and derives them and the real ``skillopsctl`` shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.derive._runners import (
    Run,
    _shows_failure,
    _silent_pass,
    covers,
    read_output,
    runs_in,
)

from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from .conftest import run_ctl
from .test_verdict_endings import Claude, _codex, _codex_answer, _codex_turn, _exec

# --- what an output says ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "status", "line"),
    [
        (
            "--- FAIL: TestPay (0.01s)\nFAIL\tapp/pay\t0.01s\nok\tapp/users\t0.2s\nFAIL",
            "failed",
            "--- FAIL: TestPay (0.01s)",
        ),
        ("ok  \tapp/users\t0.2s\nok  \tapp/pay\t(cached)", "passed", ""),
        ("FAIL\tapp/auth [build failed]\nFAIL", "failed", "FAIL app/auth [build failed]"),
        (
            "vet: a.go:3:1: declared and not used: x",
            "failed",
            "vet: a.go:3:1: declared and not used: x",
        ),
        (
            "=========== 4 failed, 100 passed in 3.21s ===========",
            "failed",
            "=========== 4 failed, 100 passed in 3.21s ===========",
        ),
        ("1 error in 0.50s", "failed", "1 error in 0.50s"),
        (
            "FAILED tests/test_a.py::test_x - assert 1 == 2\n1 failed in 0.1s",
            "failed",
            "FAILED tests/test_a.py::test_x - assert 1 == 2",
        ),
        ("======= 12 passed, 1 skipped in 0.40s =======", "passed", ""),
        (
            "Tests:       2 failed, 10 passed, 12 total",
            "failed",
            "Tests: 2 failed, 10 passed, 12 total",
        ),
        ("Tests:       10 passed, 10 total", "passed", ""),
        (
            " Test Files  1 failed | 3 passed (4)\n      Tests  1 failed | 20 passed (21)",
            "failed",
            "Test Files 1 failed | 3 passed (4)",
        ),
        ("  3 failing\n\n  1) Cart totals:\nnpm ERR! Test failed.", "failed", "3 failing"),
        ("  12 passing (40ms)", "passed", ""),
        ("npm error code 1", "failed", "npm error code 1"),
        (
            "test result: FAILED. 3 passed; 1 failed; 0 ignored",
            "failed",
            "test result: FAILED. 3 passed; 1 failed; 0 ignored",
        ),
        ("test result: ok. 4 passed; 0 failed", "passed", ""),
        (
            "error: could not compile `app` (lib test) due to 2 previous errors",
            "failed",
            "error: could not compile `app` (lib test) due to 2 previous errors",
        ),
        ("Found 3 errors.\n[*] 2 fixable with the `--fix` option.", "failed", "Found 3 errors."),
        ("All checks passed!", "passed", ""),
        (
            "Found 2 errors in 1 file (checked 9 source files)",
            "failed",
            "Found 2 errors in 1 file (checked 9 source files)",
        ),
        ("Success: no issues found in 9 source files", "passed", ""),
        (
            "src/a.ts(3,7): error TS2322: Type 'string' is not assignable",
            "failed",
            "src/a.ts(3,7): error TS2322: Type 'string' is not assignable",
        ),
        ("a.go:1:1: x (errcheck)\n6 issues:\n* errcheck: 4", "failed", "6 issues:"),
        ("0 issues.", "passed", ""),
        ("[lint:go] 1 issues:\n[lint:go] ERROR task failed", "failed", "1 issues:"),
        (
            "Tests completed in 2s\nTests Passed: 10, Failed: 2, Skipped: 0",
            "failed",
            "Tests Passed: 10, Failed: 2, Skipped: 0",
        ),
        ("Tests Passed: 257, Failed: 0, Skipped: 0, Inconclusive: 0", "passed", ""),
        ("make: *** [Makefile:4: test] Error 2", "failed", "make: *** [Makefile:4: test] Error 2"),
        # Neither: a log line quoting FAIL, a count that is zero failures, nothing at all.
        ("    log.go:12: expected FAIL got ok\n", None, ""),
        ("", None, ""),
        ("(Bash completed with no output)", None, ""),
        ("Running tests...\n", None, ""),
    ],
)
def test_a_runners_own_summary_says_how_it_went(output: str, status: str | None, line: str) -> None:
    reading = read_output(output)
    assert reading.status == status
    assert reading.line == line


def test_failed_tests_are_named_from_the_output() -> None:
    go = read_output(
        "--- FAIL: TestPay (0.0s)\n    --- FAIL: TestPay/sub (0.0s)\nFAIL\tapp/pay\t0.1s"
    )
    assert go.failed == ("TestPay",) and go.packages == ("app/pay",)
    py = read_output("FAILED tests/a.py::test_x - boom\nERROR tests/b.py::test_y\n2 failed in 1s")
    assert py.failed == ("tests/a.py::test_x", "tests/b.py::test_y")


@given(st.text(max_size=3000))
def test_reading_any_output_never_raises(text: str) -> None:
    assert read_output(text).status in ("failed", "passed", None)


# --- which runs a script makes, and whether their status counts ------------------------


@pytest.mark.parametrize(
    ("script", "runner", "carried"),
    [
        ("go test ./... 2>&1 | tail -20", "go test", False),
        ("set -o pipefail; go test ./... | tail -20", "go test", True),
        ("go test ./... 2>&1 | tee test.log", "go test", False),
        ("pytest -q; echo done", "pytest", False),
        ("npm test || true", "npm test", False),
        ("npm test || exit 1", "npm test", True),
        ("cd app && python -m pytest tests", "pytest", True),
        ("set -e\ncargo test\necho ok", "cargo test", True),
        ("uv run pytest -x", "pytest", True),
        ("npx jest src 2>&1 | head -50", "jest", False),
        ("make test | tail", "make test", False),
        ("mise run lint 2>&1 | tail -15", "mise lint", False),
        ("for d in a b; do (cd $d && go test ./...); done", "go test", False),
        ("if ruff check .; then echo ok; fi", "ruff", False),
        ("golangci-lint run ./... 2>&1 | tail -3", "golangci-lint", False),
    ],
)
def test_runs_and_whether_the_script_carries_their_status(
    script: str, runner: str, carried: bool
) -> None:
    [run] = runs_in(script)
    assert (run.runner, run.carried) == (runner, carried)


@pytest.mark.parametrize(
    "script",
    [
        "go build ./...",
        "git status | head",
        "go test -c ./internal/auth -o /tmp/a.test",
        "GOOS=windows go test -run '^$' -exec=true ./... | tail",
        "pytest --collect-only -q",
        "ruff --version",
        "golangci-lint --version",
        "make build",
    ],
)
def test_not_a_test_run(script: str) -> None:
    assert runs_in(script) == ()


@given(st.text(max_size=500))
def test_reading_any_script_never_raises(script: str) -> None:
    for run in runs_in(script):
        assert run.runner


_WORDS = st.sampled_from(
    [
        "go",
        "test",
        "vet",
        "pytest",
        "python",
        "-m",
        "npm",
        "run",
        "--",
        "npx",
        "jest",
        "uv",
        "make",
        "mise",
        "lint",
        "cargo",
        "ruff",
        "check",
        "-run",
        "-k",
        "-c",
        "-exec",
        "true",
        "./...",
        "tests/a.py::t",
        "|",
        "||",
        "&&",
        ";",
        "tail",
        "grep",
        "set",
        "-e",
        "pipefail",
        "-o",
        "if",
        "then",
        "fi",
        "for",
        "do",
        "done",
        "(",
        ")",
        "$(",
        "exit",
        "1",
        "\n",
    ]
)


@given(st.lists(_WORDS, max_size=30))
def test_any_mix_of_runner_words_reads_without_raising(words: list[str]) -> None:
    script = " ".join(words)
    for run in runs_in(script):
        assert run.runner and isinstance(run.carried, bool)
        assert covers(run, run, ()) is True  # a run covers itself


@pytest.mark.parametrize(
    ("script", "output", "passed"),
    [
        ("go vet ./... 2>&1 | head -20", "(Bash completed with no output)", True),
        ("go vet ./... 2>&1 | head -5 && echo VET-OK", "VET-OK\n", True),
        ('go build ./... && go vet ./... 2>&1 | head -40 && echo "OK"', "OK", True),
        ("npx tsc --noEmit | tail -5", "", True),
        # Its output went elsewhere, or a filter could have dropped it, or something else
        # printed: the output does not say.
        ("go vet ./... > /tmp/vet.log 2>&1; echo done", "done", False),
        ("go vet ./... 2>/dev/null | head", "", False),
        ("go vet ./... 2>&1 | grep -v generated", "", False),
        ("gofmt -l . ; go vet ./... | head", "main.go", False),
        # A runner that says when it passes is not read from silence.
        ("go test ./... 2>&1 | tail -3", "", False),
    ],
)
def test_a_silent_runner_that_printed_nothing_passed(
    script: str, output: str, passed: bool
) -> None:
    hidden = [r for r in runs_in(script) if not r.carried]
    assert hidden
    assert _silent_pass((script, "bash"), hidden, output) is passed


@pytest.mark.parametrize(
    ("script", "output", "trusted"),
    [
        ("go test ./... 2>&1 | tail -20", "ok  \tapp/a\t0.1s", True),
        ("go test ./... 2>&1 | tee test.log", "ok  \tapp/a\t0.1s", True),
        ('go test ./... 2>&1 | grep -v "^ok\\|no test files" | tail', "ok  \tapp/a\t0.1s", True),
        ("go test ./... 2>&1 | grep -E 'FAIL|ok'", "ok  \tapp/a\t0.1s", True),
        ("go test ./... 2>&1 | head -5", "ok  \tapp/a\t0.1s\nok  \tapp/b\t0.1s", True),
        ("go test ./... | sed -n '1,40p'", "ok  \tapp/a\t0.1s", True),
        # A filter that could have dropped the failure lines: the passing lines do not say.
        ("go test ./... 2>&1 | grep '^ok'", "ok  \tapp/a\t0.1s", False),
        ("go test ./... 2>&1 | grep -v FAIL", "ok  \tapp/a\t0.1s", False),
        ("go test ./... 2>&1 | head -2", "ok  \tapp/a\t0.1s\nok  \tapp/b\t0.1s", False),
        ("go test ./... 2>&1 | head -50 | tail -2", "ok  \tapp/a\t0.1s", False),
        ("go test ./... 2>&1 | sort", "ok  \tapp/a\t0.1s", False),
        ("pytest 2>&1 | grep -c passed", "3", False),
    ],
)
def test_a_pass_counts_only_where_a_failure_would_have_shown(
    script: str, output: str, trusted: bool
) -> None:
    [run] = runs_in(script)
    assert _shows_failure(run, output) is trusted


# --- what a run covers ----------------------------------------------------------------


def _run(script: str) -> Run:
    [run] = runs_in(script)
    return run


@pytest.mark.parametrize(
    ("failed", "later", "failures", "resolves"),
    [
        ("go test ./...", "go test ./...", (), True),
        ("go test ./users/...", "go test ./...", (), True),
        ("go test ./users/x", "go test ./users/...", (), True),
        ("go test ./...", "go test ./users/...", (), False),
        ("go test ./...", "go test ./pay -run TestPay", ("TestPay",), True),
        ("go test ./...", "go test ./pay -run TestOther", ("TestPay",), False),
        ("go test ./pay -run TestPay", "go test ./pay", (), True),
        ("go test ./pay -run TestA", "go test ./pay -run TestB", (), False),
        ("go test", "go test ./...", (), True),
        ("go test ./...", "go test", (), False),
        ("pytest", "pytest tests/test_smoke.py", (), False),
        ("pytest tests/test_a.py", "pytest", (), True),
        ("pytest tests", "python -m pytest tests/unit", (), False),
        ("pytest tests/unit", "python -m pytest tests", (), True),
        ("pytest", "pytest tests/a.py::test_x", ("tests/a.py::test_x",), True),
        ("pytest", "pytest tests/a.py", ("tests/a.py::test_x",), True),
        ("pytest", "pytest tests/b.py", ("tests/a.py::test_x",), False),
        ("pytest -k slow", "pytest", (), True),
        ("pytest", "pytest -k slow", (), False),
        ("npm test", "npm test -- src/util.test.js", (), False),
        ("npm test -- src/util.test.js", "npm run test", (), True),
        ("cargo test", "cargo test parse", (), False),
        ("ruff check src/a.py", "ruff check .", (), True),
        ("ruff check .", "ruff check src/a.py", (), False),
        ("go test ./...", "pytest", (), False),
    ],
)
def test_only_a_run_covering_what_failed_resolves_it(
    failed: str, later: str, failures: tuple[str, ...], resolves: bool
) -> None:
    assert covers(_run(later), _run(failed), failures) is resolves


# --- end to end -----------------------------------------------------------------------


def _sid(n: int) -> str:
    return f"4e2f0000-0000-4000-8000-{n:012d}"


def _one(n: int, command: str, output: str, answer: str, *, error: bool = False) -> Claude:
    return (
        Claude(_sid(n))
        .prompt("make the test suite pass")
        .call("t1", "Bash", command=command)
        .result("t1", output, error=error)
        .say(answer)
    )


def _two(n: int, first: tuple[str, str], then: tuple[str, str], answer: str) -> Claude:
    return (
        Claude(_sid(n))
        .prompt("make the test suite pass")
        .call("t1", "Bash", command=first[0])
        .result("t1", first[1], error=first[1].startswith("Exit code"))
        .call("t2", "Bash", command=then[0])
        .result("t2", then[1], error=then[1].startswith("Exit code"))
        .say(answer)
    )


_GO_FAIL = (
    "--- FAIL: TestPayments (0.01s)\nFAIL\nFAIL\tapp/payments\t0.01s\nok\tapp/users\t0.2s\nFAIL"
)
# (session, verdict, reason, outcome counts shown)
_CLAUDE: list[tuple[Claude, str | None, str | None, dict[str, int]]] = [
    # F21: the status is hidden, the output says it failed.
    (
        _one(1, "go test ./... 2>&1 | tail -5", _GO_FAIL, "The payments test still fails."),
        "failure",
        "failure: go test ./... | tail -5 failed in the last turn, nothing of the same kind"
        " passed after it",
        {"failure": 1},
    ),
    (
        _one(
            2,
            "npm test 2>&1 | tail -20",
            "  3 failing\n\n  1) Cart totals:\n     AssertionError: expected 10\n"
            "npm ERR! Test failed.",
            "Tests are still failing on cart totals.",
        ),
        "failure",
        "failure: npm test | tail -20 failed in the last turn",
        {"failure": 1},
    ),
    (
        _one(3, "pytest 2>&1 | tee test.log", "== 2 failed, 10 passed in 1.20s ==", "Done."),
        "failure",
        "failure: pytest | tee test.log failed in the last turn",
        {"failure": 1},
    ),
    (
        _one(4, "cargo test || true", "test result: FAILED. 3 passed; 1 failed", "Done."),
        "failure",
        "failure: cargo test failed in the last turn",
        {"failure": 1},
    ),
    (
        _one(5, "ruff check . ; echo done", "Found 3 errors.\ndone", "Lint is clean."),
        "failure",
        "failure: ruff check . failed in the last turn",
        {"failure": 1},
    ),
    # Hidden status, passing summary: a success.
    (
        _one(6, "go test ./... 2>&1 | tail -3", "ok  \tapp/users\t0.2s", "All green."),
        "success",
        None,
        {"success": 1},
    ),
    # Hidden status, an output that says nothing: unknown, not a success (and no verdict).
    (
        _one(7, "go test ./... 2>&1 | grep -v '^ok' | head", "", "Looks fine."),
        None,
        None,
        {"unknown": 1},
    ),
    # A grep that matched nothing exits 1: that is the grep's status, not the test's.
    (
        _one(8, "go test ./... 2>&1 | grep FAIL", "Exit code 1", "No failures.", error=True),
        None,
        None,
        {"unknown": 1},
    ),
    # go vet prints nothing when it passes: an empty output through head says it passed.
    (
        _two(
            19,
            ("go vet ./...", "Exit code 1\nvet: a.go:3:2: declared and not used: x"),
            ("go vet ./... 2>&1 | head -20 && echo VET-OK", "VET-OK"),
            "Vet is clean.",
        ),
        "success",
        None,
        {"failure": 1, "success": 1},
    ),
    # Only the passing lines were kept: that does not say it passed.
    (
        _one(20, "go test ./... 2>&1 | grep '^ok'", "ok  \tapp/users\t0.2s", "All pass."),
        None,
        None,
        {"unknown": 1},
    ),
    # A failure followed by a run whose outcome is unknown: not resolved by it.
    (
        _two(
            9,
            ("go test ./...", "Exit code 1\n" + _GO_FAIL),
            ("go test ./... 2>&1 | grep -v '^ok' | head", ""),
            "Fixed.",
        ),
        "failure",
        "failure: go test ./... failed in the last turn, nothing of the same kind passed after it",
        {"failure": 1, "unknown": 1},
    ),
    # F20: a narrower pass does not resolve a failed full run.
    (
        _two(
            10,
            ("go test ./...", "Exit code 1\n" + _GO_FAIL),
            ("go test ./users/...", "ok\tapp/users 0.2s"),
            "All tests pass now.",
        ),
        "failure",
        "failure: go test ./... failed in the last turn, only a narrower go test ./users/..."
        " passed after it",
        {"failure": 1, "success": 1},
    ),
    (
        _two(
            11,
            ("npm test", "Exit code 1\n 3 failing"),
            ("npm test -- src/util.test.js", "1 passing"),
            "Done, tests are green.",
        ),
        "failure",
        "failure: npm test failed in the last turn, only a narrower npm test --"
        " src/util.test.js passed after it",
        {"failure": 1, "success": 1},
    ),
    (
        _two(
            12,
            ("pytest", "Exit code 1\n== 4 failed, 100 passed in 3.0s =="),
            ("pytest tests/test_smoke.py", "== 1 passed in 0.1s =="),
            "Fixed.",
        ),
        "failure",
        "failure: pytest failed in the last turn, only a narrower pytest tests/test_smoke.py"
        " passed after it",
        {"failure": 1, "success": 1},
    ),
    # A hidden failure, then a narrower hidden pass: still a failure, said so.
    (
        _two(
            13,
            ("go test ./... 2>&1 | tail -5", _GO_FAIL),
            ("go test ./users/... 2>&1 | tail -5", "ok\tapp/users\t0.2s"),
            "Fixed.",
        ),
        "failure",
        "failure: go test ./... | tail -5 failed in the last turn, only a narrower go test"
        " ./users/... passed after it",
        {"failure": 1, "success": 1},
    ),
    # A wider (or the same) pass resolves it.
    (
        _two(
            14,
            (
                "go test ./users/...",
                "Exit code 1\n--- FAIL: TestUser (0.0s)\nFAIL\tapp/users\t0.1s",
            ),
            ("go test ./... 2>&1 | tail -3", "ok\tapp/users\t0.2s\nok\tapp/pay\t0.1s"),
            "Fixed.",
        ),
        "success",
        None,
        {"failure": 1, "success": 1},
    ),
    (
        _two(
            15,
            ("pytest tests/test_a.py", "Exit code 1\n== 1 failed, 3 passed in 0.2s =="),
            ("python -m pytest", "== 40 passed in 2.0s =="),
            "Fixed.",
        ),
        "success",
        None,
        {"failure": 1, "success": 1},
    ),
    # A run naming the tests that failed covers those failures.
    (
        _two(
            16,
            (
                "pytest",
                "Exit code 1\nFAILED tests/test_a.py::test_x - boom\n1 failed, 9 passed in 1s",
            ),
            ("pytest tests/test_a.py::test_x", "1 passed in 0.1s"),
            "Fixed.",
        ),
        "success",
        None,
        {"failure": 1, "success": 1},
    ),
    (
        _two(
            17,
            ("go test ./...", "Exit code 1\n" + _GO_FAIL),
            ("go test ./payments -run 'TestPayments$' -count=1", "ok\tapp/payments\t0.1s"),
            "Fixed.",
        ),
        "success",
        None,
        {"failure": 1, "success": 1},
    ),
    # Another selection of the same package is narrower.
    (
        _two(
            18,
            (
                "go test ./pay -run TestA",
                "Exit code 1\n--- FAIL: TestA (0.0s)\nFAIL\tapp/pay\t0.1s",
            ),
            ("go test ./pay -run TestB", "ok\tapp/pay\t0.1s"),
            "Fixed.",
        ),
        "failure",
        "failure: go test ./pay -run TestA failed in the last turn, only a narrower go test"
        " ./pay -run TestB passed after it",
        {"failure": 1, "success": 1},
    ),
]

_CODEX = [
    # Codex: a hidden status read from the unified-exec output.
    (
        [
            *_codex_turn("make the tests pass"),
            *_exec("c1", "go test ./... 2>&1 | tail -5", 0, _GO_FAIL),
            _codex_answer("The payments test still fails."),
        ],
        "failure",
        "failure: go test ./... | tail -5 failed in the last turn",
        {"failure": 1},
    ),
    (
        [
            *_codex_turn("make the tests pass"),
            *_exec("c1", "go test ./...", 1, _GO_FAIL),
            *_exec("c2", "go test ./users/...", 0, "ok\tapp/users\t0.2s"),
            _codex_answer("All tests pass now."),
        ],
        "failure",
        "failure: go test ./... failed in the last turn, only a narrower go test ./users/..."
        " passed after it",
        {"failure": 1, "success": 1},
    ),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("runs")
    for session, *_ in _CLAUDE:
        session.write(home)
    for n, (rows, *_) in enumerate(_CODEX):
        _codex(home, 60 + n, rows)
    run_once(home)
    return home


@pytest.fixture(scope="module")
def shown(home: Path) -> dict[str, dict[str, Any]]:
    done = run_ctl("--db", str(db_path(home)), "sessions", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    return {s["native_session_id"]: s for s in json.loads(done.stdout)}


@pytest.mark.slow
def test_session_show_marks_a_hidden_failure_and_quotes_its_summary(home: Path) -> None:
    done = run_ctl("--db", str(db_path(home)), "session", "show", _sid(1), env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "why       go test ./... | tail -5 failed in the last turn" in done.stdout
    [marked] = [i for i, line in enumerate(lines) if line.endswith("◀ verdict")]
    assert "✗ TOOL Bash  go test ./... 2>&1 | tail -5" in lines[marked]
    assert lines[marked + 1].strip() == "↳ --- FAIL: TestPayments (0.01s)"
    unknown = run_ctl("--db", str(db_path(home)), "session", "show", _sid(7), env=daemon_env(home))
    assert "? TOOL Bash  go test ./... 2>&1 | grep -v '^ok' | head" in unknown.stdout


def _check(
    session: dict[str, Any], verdict: str | None, reason: str | None, calls: dict[str, int]
) -> None:
    assert session["verdict"] == verdict, session["verdict_reason"]
    if reason is None:
        assert session["verdict_reason"] is None
    else:
        assert session["verdict_reason"].startswith(reason), session["verdict_reason"]
    counts = {k: v for k, v in session["outcomes"].items() if v}
    assert counts == calls


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(_CLAUDE)))
def test_claude_runs_end_to_end(shown: dict[str, dict[str, Any]], n: int) -> None:
    session, verdict, reason, calls = _CLAUDE[n]
    _check(shown[session.sid], verdict, reason, calls)


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(_CODEX)))
def test_codex_runs_end_to_end(shown: dict[str, dict[str, Any]], n: int) -> None:
    _rows, verdict, reason, calls = _CODEX[n]
    session = shown[f"019f0000-0000-7000-8000-{60 + n:012d}"]
    _check(session, verdict, reason, calls)
