"""Review findings H3 and H4 through the real CLI: a run whose status a pipe hid, of a runner
not on the list (``mix test``, ``php artisan test``, ``terraform plan``, ``kubectl apply``), is
judged by its output's failure sign and is never a success on ``tail``'s status (H3); and a
script longer than the emitted arguments' clip is parsed whole, so ``go test | tail`` after a
long heredoc decides it (H4). Real-shaped Claude Code sessions under a temporary HOME, derived
by a real ``skillopsd --once`` and read back with ``skillopsctl sessions --json``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from .conftest import run_ctl
from .test_verdict_endings import Claude

# A Go test file written by heredoc, longer than the 16,384 characters an argument keeps.
_HEREDOC = (
    "cat > internal/parse/parse_test.go <<'EOF'\npackage parse\n\nimport \"testing\"\n\n"
    + "".join(
        f'func TestCase{i:04d}(t *testing.T) {{ if Parse("{i}") != {i} {{ t.Fatal("no") }} }}\n'
        for i in range(260)
    )
    + "EOF\n"
)
_LONG = _HEREDOC + "go test ./internal/parse/ 2>&1 | tail -5"
# 3,000 commands before the test run (37,912 characters): still under the parser's 64 KiB.
_CHAIN = " && ".join(f"echo {i}" for i in range(3000)) + "; go test ./... 2>&1 | tail -3"
_FAILED_GO = "--- FAIL: TestCase0007 (0.00s)\nFAIL\nFAIL\tapp/internal/parse\t0.01s"
_PASSED_GO = "ok  \tapp/internal/parse\t0.01s"


def _sid(n: int) -> str:
    return f"7c4e0000-0000-4000-8000-{n:012d}"


# name, calls (command, output, is_error), expected verdict, expected outcome counts
_H3: list[tuple[str, str, str | None, dict[str, int]]] = [
    # Failing runs of runners not on the list, piped through tail (tail's status is 0).
    (
        "mix test 2>&1 | tail -3",
        "Finished in 0.1 seconds\n10 tests, 1 failure\n\nRandomized with seed 1234",
        "failure",
        {"failure": 1},
    ),
    (
        "php artisan test 2>&1 | tail -3",
        "  FAILED  Tests\\Feature\\ExampleTest > it returns ok\n"
        "  Tests:    1 failed, 9 passed (12 assertions)\n  Duration: 0.41s",
        "failure",
        {"failure": 1},
    ),
    (
        "vendor/bin/phpunit 2>&1 | tail -3",
        "There was 1 failure:\n\nFAILURES!\nTests: 10, Assertions: 12, Failures: 1.",
        "failure",
        {"failure": 1},
    ),
    (
        "terraform plan 2>&1 | tail -4",
        "│ Error: Reference to undeclared resource\n│\n│   on main.tf line 3\n╵",
        "failure",
        {"failure": 1},
    ),
    (
        "kubectl apply -f k8s/ 2>&1 | tail -2",
        "deployment.apps/app configured\n"
        'Error from server (Invalid): error when creating "k8s/svc.yaml": Service is invalid',
        "failure",
        {"failure": 1},
    ),
    # Their passing signs: a success.
    (
        "mix test 2>&1 | tail -3",
        "Finished in 0.1 seconds\n10 tests, 0 failures",
        "success",
        {"success": 1},
    ),
    (
        "php artisan test 2>&1 | tail -3",
        "  Tests:    10 passed (12 assertions)\n  Duration: 0.41s",
        "success",
        {"success": 1},
    ),
    (
        "terraform plan 2>&1 | tail -2",
        "Plan: 2 to add, 0 to change, 0 to destroy.",
        "success",
        {"success": 1},
    ),
    (
        "kubectl apply -f k8s/ 2>&1 | tail -2",
        "deployment.apps/app configured\nservice/app unchanged",
        "success",
        {"success": 1},
    ),
    # An output that says neither: unknown, never a success on tail's status.
    ("mix test 2>&1 | tail -3", "Compiling 3 files (.ex)\n....", None, {"unknown": 1}),
    ("./deploy.sh 2>&1 | tail -3", "uploading\ndone uploading", None, {"unknown": 1}),
    # A command that only reads keeps the pipe's status; so does one whose status is its own.
    ("curl -s https://api.example.com/x | jq .name", '"x"', "success", {"success": 1}),
    ("mix test", "Finished in 0.1 seconds\n10 tests, 0 failures", "success", {"success": 1}),
    # A traceback at the end of a piped Python program: a failure, as before.
    (
        "python manage.py migrate 2>&1 | tail -3",
        "  File \"manage.py\", line 3, in <module>\nModuleNotFoundError: No module named 'x'",
        "failure",
        {"failure": 1},
    ),
]

_CASES: list[tuple[str, list[tuple[str, str, bool]], str | None, dict[str, int]]] = [
    *[(f"H3 {c}", [(c, out, False)], v, counts) for c, out, v, counts in _H3],
    (
        "long heredoc then go test | tail fails",
        [(_LONG, _FAILED_GO, False)],
        "failure",
        {"failure": 1},
    ),
    (
        "long heredoc then go test | tail passes",
        [(_LONG, _PASSED_GO, False)],
        "success",
        {"success": 1},
    ),
    (
        "3,000 echos then go test | tail fails",
        [(_CHAIN, _FAILED_GO, False)],
        "failure",
        {"failure": 1},
    ),
    (
        "go test fails, then long heredoc and go test passes",
        [
            ("go test ./internal/parse/", "Exit code 1\n" + _FAILED_GO, True),
            (_LONG, _PASSED_GO, False),
        ],
        "success",
        {"failure": 1, "success": 1},
    ),
]


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    assert len(_LONG) > 16_384
    home = tmp_path_factory.mktemp("hidden_more")
    for n, (name, calls, _verdict, _counts) in enumerate(_CASES):
        session = Claude(_sid(n)).prompt(name)
        for k, (command, output, error) in enumerate(calls):
            session = session.call(f"t{k}", "Bash", command=command, description="run")
            session = session.result(f"t{k}", output, error=error)
        session.say("All tests pass.").write(home)
    run_once(home)
    done = run_ctl("--db", str(db_path(home)), "sessions", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    return {s["native_session_id"]: s for s in json.loads(done.stdout)}


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(_CASES)), ids=[c[0] for c in _CASES])
def test_sessions(shown: dict[str, dict[str, Any]], n: int) -> None:
    _name, _calls, verdict, counts = _CASES[n]
    session = shown[_sid(n)]
    assert session["verdict"] == verdict, (session["verdict"], session["verdict_reason"])
    assert {k: v for k, v in session["outcomes"].items() if v} == counts
