"""Test runs and builds whose exit status a pipe hid, for every runner the reviewer named
(finding G3): ``python -m unittest``, ``bundle exec rspec``, ``rails test``, ``./gradlew
test``, ``mvn test``, ``bazel test``, ``ctest``, ``cargo build``, ``go build``, ``make``,
``npm run build``, ``docker build``, a compiler, and a Python program.

Piped through ``tail`` (the pipeline's status is ``tail``'s, 0), a run is judged by its own
output: its failure summary makes the call a failure, its passing summary a success, and an
output that says neither leaves it unknown, never a success. The same runs without the pipe
carry their own status. Each case is a real-shaped Claude Code session and a Codex session
(unified exec, ``Process exited with code 0``) under a temporary HOME, captured and derived by
a real ``skillopsd --once`` and read back with the real ``skillopsctl sessions --json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillopsd.derive._runners import builds_in, read_output, runs_in
from skillopsd.derive._shell import read_script

from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from .conftest import run_ctl
from .test_verdict_endings import Claude, _codex, _codex_answer, _codex_turn, _exec


class Runner(msgspec.Struct, frozen=True):
    name: str
    piped: str  # the command with its status hidden by "| tail"
    plain: str  # the same run, carrying its own status
    failing: str  # what a failing run printed (its last lines)
    passing: str  # what a passing run printed
    neither: str  # an output that says neither (a run cut before its summary)
    what: str  # what the reason line calls the piped call


_RUNNERS = [
    Runner(
        "unittest",
        "python -m unittest 2>&1 | tail -3",
        "python -m unittest",
        "Ran 12 tests in 0.001s\n\nFAILED (failures=1)",
        "Ran 12 tests in 0.001s\n\nOK",
        "test_parse (tests.test_a.ParseTest.test_parse) ... ok",
        "python -m unittest | tail -3",
    ),
    Runner(
        "rspec",
        "bundle exec rspec 2>&1 | tail -6",
        "bundle exec rspec",
        "25 examples, 2 failures\n\nFailed examples:\n\nrspec ./spec/a_spec.rb:10 # A parses",
        "Finished in 0.51 seconds (files took 0.2 seconds to load)\n25 examples, 0 failures",
        "Randomized with seed 1234\n..........",
        "bundle exec rspec | tail -6",
    ),
    Runner(
        "rails test",
        "bin/rails test 2>&1 | tail -3",
        "bin/rails test",
        "Finished in 0.104s, 115.3 runs/s.\n12 runs, 20 assertions, 1 failures, 0 errors, 0 skips",
        "Finished in 0.104s, 115.3 runs/s.\n12 runs, 20 assertions, 0 failures, 0 errors, 0 skips",
        "# Running:\n\n.....F",
        "bin/rails test | tail -3",
    ),
    Runner(
        "gradle",
        "./gradlew test 2>&1 | tail -8",
        "./gradlew test",
        "3 tests completed, 1 failed\n\nFAILURE: Build failed with an exception.\n\n"
        "* What went wrong:\nExecution failed for task ':app:test'.\n\nBUILD FAILED in 2s",
        "> Task :app:test\n\nBUILD SUCCESSFUL in 3s\n4 actionable tasks: 4 executed",
        "> Task :app:compileJava\n> Task :app:test",
        "./gradlew test | tail -8",
    ),
    Runner(
        "maven",
        "mvn test 2>&1 | tail -5",
        "mvn test",
        "[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0\n[INFO] BUILD FAILURE\n"
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-surefire-plugin:3.2.5:test"
        " (default-test) on project app: There are test failures.",
        "[INFO] Tests run: 3, Failures: 0, Errors: 0, Skipped: 0\n[INFO] BUILD SUCCESS",
        "[INFO] Scanning for projects...\n[INFO] Building app 1.0",
        "mvn test | tail -5",
    ),
    Runner(
        "bazel",
        "bazel test //... 2>&1 | tail -3",
        "bazel test //...",
        "//app:parse_test    FAILED in 0.4s\n\n"
        "Executed 3 out of 3 tests: 2 tests pass and 1 fails locally.",
        "//app:parse_test    PASSED in 0.4s\n\nExecuted 3 out of 3 tests: 3 tests pass.",
        "INFO: Analyzed 3 targets (0 packages loaded, 0 targets configured).",
        "bazel test //... | tail -3",
    ),
    Runner(
        "ctest",
        "ctest --output-on-failure 2>&1 | tail -4",
        "ctest --output-on-failure",
        "90% tests passed, 1 tests failed out of 10\n\nThe following tests FAILED:\n"
        "\t  3 - parse (Failed)",
        "100% tests passed, 0 tests failed out of 10\n\nTotal Test time (real) =   0.05 sec",
        "      Start  3: parse\n 3/10 Test  #3: parse ............   Passed    0.01 sec",
        "ctest --output-on-failure | tail -4",
    ),
    Runner(
        "cargo build",
        "cargo build 2>&1 | tail -3",
        "cargo build",
        "error[E0425]: cannot find value `x` in this scope\n\n"
        'error: could not compile `app` (bin "app") due to 1 previous error',
        "   Compiling app v0.1.0 (/w/repo)\n"
        "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.52s",
        "   Compiling serde v1.0.200\n   Compiling app v0.1.0 (/w/repo)",
        "cargo build | tail -3",
    ),
    Runner(
        "go build",
        "go build ./... 2>&1 | tail -3",
        "go build ./...",
        "# example.com/app\n./main.go:5:2: undefined: foo",
        "",  # go build prints nothing when it passes
        "go: downloading golang.org/x/sync v0.7.0",
        "go build ./... | tail -3",
    ),
    Runner(
        "make",
        "make 2>&1 | tail -3",
        "make",
        "cc -o app main.c\nmain.c:3:5: error: expected ';' after expression\n"
        "make: *** [Makefile:2: all] Error 1",
        "make: Nothing to be done for 'all'.",
        "cc -c -o main.o main.c\ncc -o app main.o",
        "make | tail -3",
    ),
    Runner(
        "npm run build",
        "npm run build 2>&1 | tail -4",
        "npm run build",
        "npm ERR! code ELIFECYCLE\nnpm ERR! errno 2\nnpm ERR! app@1.0.0 build: `tsc && vite build`"
        "\nnpm ERR! Exit status 2",
        "vite v5.2.0 building for production...\n✓ 34 modules transformed.\n"
        "dist/index.html  0.46 kB\n✓ built in 1.20s",
        "vite v5.2.0 building for production...\ntransforming...",
        "npm run build | tail -4",
    ),
    Runner(
        "docker build",
        "docker build -t app . 2>&1 | tail -3",
        "docker build -t app .",
        '#8 ERROR: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1\n'
        '------\nERROR: failed to solve: process "/bin/sh -c npm ci" did not complete'
        " successfully: exit code: 1",
        "#9 writing image sha256:0123abcd done\n#9 naming to docker.io/library/app done\n"
        "#9 DONE 0.1s",
        "#7 [3/4] RUN npm ci\n#7 12.3 added 120 packages",
        "docker build -t app . | tail -3",
    ),
    Runner(
        "gcc",
        "gcc -Wall -o app main.c 2>&1 | head -20",
        "gcc -Wall -o app main.c",
        "main.c: In function 'main':\nmain.c:3:5: error: expected ';' before 'return'",
        "",  # a compiler prints nothing when it passes
        "main.c:7:9: warning: unused variable 'x' [-Wunused-variable]",
        "gcc -Wall -o app main.c | head -20",
    ),
]
_KINDS = ("piped fails", "piped passes", "piped says neither", "plain fails", "plain passes")
# (verdict, reason start, outcome counts) of each kind; {what} is the piped call's name.
_EXPECTED: dict[str, tuple[str | None, str | None, dict[str, int]]] = {
    "piped fails": (
        "failure",
        "failure: {what} failed in the last turn, nothing of the same kind passed after it",
        {"failure": 1},
    ),
    "piped passes": ("success", None, {"success": 1}),
    "piped says neither": (None, None, {"unknown": 1}),
    "plain fails": ("failure", "failure: {plain} failed in the last turn", {"failure": 1}),
    "plain passes": ("success", None, {"success": 1}),
}


def _call(runner: Runner, kind: str) -> tuple[str, str, int]:
    """The command, what it printed and its exit status (the pipeline's: tail's 0)."""
    command = runner.plain if kind.startswith("plain") else runner.piped
    if kind.endswith("fails"):
        return command, runner.failing, 1 if kind.startswith("plain") else 0
    if kind.endswith("passes"):
        return command, runner.passing, 0
    return command, runner.neither, 0


def _claude_sid(n: int) -> str:
    return f"6b3d0000-0000-4000-8000-{n:012d}"


def _cases() -> list[tuple[int, Runner, str]]:
    return [(n, r, k) for n, (r, k) in enumerate((r, k) for r in _RUNNERS for k in _KINDS)]


_CASES = _cases()


def _claude(n: int, runner: Runner, kind: str) -> Claude:
    command, output, status = _call(runner, kind)
    # Claude Code: a non-zero status is an error result starting "Exit code N"; an empty
    # output is its placeholder.
    text = (
        f"Exit code {status}\n{output}" if status else output or "(Bash completed with no output)"
    )
    return (
        Claude(_claude_sid(n))
        .prompt(f"build and test it ({runner.name})")
        .call("t1", "Bash", command=command, description="run")
        .result("t1", text, error=bool(status))
        .say("All tests pass.")
    )


def _codex_rows(runner: Runner, kind: str) -> list[dict[str, Any]]:
    command, output, status = _call(runner, kind)
    return [
        *_codex_turn(f"build and test it ({runner.name})"),
        *_exec("c1", command, status, output),
        _codex_answer("All tests pass."),
    ]


# Beside the runners: builds a script lets fail on purpose, and the status a list carries.
_OTHERS: list[tuple[str, Claude, str | None, dict[str, int]]] = [
    (
        # A loop over platforms with "|| true": the compile errors are what it looked for.
        "a cross-compile survey",
        Claude("6b3d0000-0000-4000-8000-100000000001")
        .prompt("which platforms have syscall.Flock?")
        .call(
            "t1",
            "Bash",
            command="for os in linux js; do echo $os; GOOS=$os go build ./... 2>&1 | head -5"
            " || true; done",
        )
        .result("t1", "linux\njs\n# example.com/app\n./main.go:3:26: undefined: syscall.Flock")
        .say("Flock is missing on js."),
        "success",
        {"success": 1},
    ),
    (
        # "a && b 2>&1 | c" is "a && (b 2>&1 | c)": the build carries its status, and passed.
        "a build before a piped help",
        Claude("6b3d0000-0000-4000-8000-100000000002")
        .prompt("show the help")
        .call("t1", "Bash", command="go build -o /tmp/app ./cmd/app && /tmp/app --help 2>&1 | head")
        .result("t1", "Usage:\n  app [command]")
        .say("Here is the help."),
        "success",
        {"success": 1},
    ),
    (
        # A failed build, then a piped build that says nothing: still the failure.
        "a failure, then an unknown build",
        Claude("6b3d0000-0000-4000-8000-100000000003")
        .prompt("fix the build")
        .call("t1", "Bash", command="cargo build")
        .result("t1", "Exit code 101\nerror: could not compile `app`", error=True)
        .call("t2", "Bash", command="cargo build 2>&1 | tail -3")
        .result("t2", "   Compiling app v0.1.0 (/w/repo)")
        .say("Fixed."),
        "failure",
        {"failure": 1, "unknown": 1},
    ),
    (
        # A failed build, then a piped build that passed: resolved.
        "a failure, then a piped pass",
        Claude("6b3d0000-0000-4000-8000-100000000004")
        .prompt("fix the build")
        .call("t1", "Bash", command="go build ./...")
        .result("t1", "Exit code 1\n# example.com/app\n./main.go:5:2: undefined: foo", error=True)
        .call("t2", "Bash", command="go build ./... 2>&1 | head -20")
        .result("t2", "(Bash completed with no output)")
        .say("Fixed."),
        "success",
        {"failure": 1, "success": 1},
    ),
    (
        # A block, then a build whose outcome is unknown: something came after the block.
        "a block, then an unknown build",
        Claude("6b3d0000-0000-4000-8000-100000000005")
        .prompt("push it")
        .call("t1", "Bash", command="git push origin main")
        .result(
            "t1",
            "The user doesn't want to proceed with this tool use. The tool use was rejected",
            error=True,
        )
        .call("t2", "Bash", command="make 2>&1 | tail -3")
        .result("t2", "cc -c -o main.o main.c\ncc -o app main.o")
        .say("Built it instead of pushing."),
        "success",
        {"blocked": 1, "unknown": 1},
    ),
    (
        # The user interrupted a turn whose only call's outcome is unknown: abandoned.
        "an interrupt after an unknown build",
        Claude("6b3d0000-0000-4000-8000-100000000006")
        .prompt("run the tests")
        .call("t1", "Bash", command="go test ./...")
        .result("t1", "ok  \tapp\t0.1s")
        .say("Green.")
        .prompt("now build the image")
        .call("t2", "Bash", command="docker build -t app . 2>&1 | tail -3")
        .result("t2", "#7 [3/4] RUN npm ci\n#7 12.3 added 120 packages")
        .interrupt(),
        "abandoned",
        {"success": 1, "unknown": 1},
    ),
    (
        # A Python program whose output ends in a traceback died, whatever tail's status.
        "a piped python script that died",
        Claude("6b3d0000-0000-4000-8000-100000000007")
        .prompt("migrate the database")
        .call("t1", "Bash", command="python manage.py migrate 2>&1 | tail -3")
        .result(
            "t1",
            '  File "/w/repo/manage.py", line 3, in <module>\n    import foo\n'
            "ModuleNotFoundError: No module named 'foo'",
        )
        .say("Migrated."),
        "failure",
        {"failure": 1},
    ),
    (
        # A script has no summary that says it passed: any other output keeps its status.
        "a piped python script that printed",
        Claude("6b3d0000-0000-4000-8000-100000000008")
        .prompt("migrate the database")
        .call("t1", "Bash", command="python manage.py migrate 2>&1 | tail -3")
        .result("t1", "  Applying app.0002_auto... OK\n  Applying app.0003_index... OK")
        .say("Migrated."),
        None,  # no sign either way: unknown, not a success on tail's status (review H3)
        {"unknown": 1},
    ),
    (
        # A traceback the script printed and went on after (a logged, handled error).
        "a piped python script that logged a traceback and went on",
        Claude("6b3d0000-0000-4000-8000-100000000009")
        .prompt("run the job")
        .call("t1", "Bash", command="python job.py 2>&1 | tail -4")
        .result(
            "t1",
            '  File "job.py", line 9, in fetch\nTimeoutError: timed out\nretrying...\n'
            "done: 12 rows",
        )
        .say("The job ran."),
        None,  # not a failure (it went on), and no pass sign: unknown (review H3)
        {"unknown": 1},
    ),
]
_CODEX_OTHERS = [
    (
        "a piped python script that died",
        [
            *_codex_turn("migrate the database"),
            *_exec(
                "c1",
                "python3 manage.py migrate 2>&1 | tail -3",
                0,
                '  File "/w/repo/manage.py", line 3, in <module>\n    import foo\n'
                "ModuleNotFoundError: No module named 'foo'",
            ),
            _codex_answer("Migrated."),
        ],
        "failure",
        {"failure": 1},
    ),
]


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    home = tmp_path_factory.mktemp("builds")
    for n, runner, kind in _CASES:
        _claude(n, runner, kind).write(home)
        _codex(home, n, _codex_rows(runner, kind))
    for _name, session, _verdict, _counts in _OTHERS:
        session.write(home)
    for n, (_name, rows, _verdict, _counts) in enumerate(_CODEX_OTHERS):
        _codex(home, 900 + n, rows)
    run_once(home)
    done = run_ctl("--db", str(db_path(home)), "sessions", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    return {s["native_session_id"]: s for s in json.loads(done.stdout)}


def _check(session: dict[str, Any], runner: Runner, kind: str) -> None:
    verdict, reason, counts = _EXPECTED[kind]
    assert session["verdict"] == verdict, (session["verdict"], session["verdict_reason"])
    if reason is None:
        assert session["verdict_reason"] is None
    else:
        expected = reason.format(what=runner.what, plain=runner.plain)
        assert session["verdict_reason"].startswith(expected), session["verdict_reason"]
    assert {k: v for k, v in session["outcomes"].items() if v} == counts


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "runner", "kind"), _CASES, ids=[f"{r.name}: {k}" for _, r, k in _CASES]
)
def test_claude_code(shown: dict[str, dict[str, Any]], n: int, runner: Runner, kind: str) -> None:
    _check(shown[_claude_sid(n)], runner, kind)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "runner", "kind"), _CASES, ids=[f"{r.name}: {k}" for _, r, k in _CASES]
)
def test_codex(shown: dict[str, dict[str, Any]], n: int, runner: Runner, kind: str) -> None:
    _check(shown[f"019f0000-0000-7000-8000-{n:012d}"], runner, kind)


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(_OTHERS)), ids=[o[0] for o in _OTHERS])
def test_builds_a_script_keeps_or_lets_fail(shown: dict[str, dict[str, Any]], n: int) -> None:
    _name, session, verdict, counts = _OTHERS[n]
    got = shown[session.sid]
    assert got["verdict"] == verdict, got["verdict_reason"]
    assert {k: v for k, v in got["outcomes"].items() if v} == counts


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(_CODEX_OTHERS)), ids=[o[0] for o in _CODEX_OTHERS])
def test_codex_scripts(shown: dict[str, dict[str, Any]], n: int) -> None:
    _name, _rows, verdict, counts = _CODEX_OTHERS[n]
    got = shown[f"019f0000-0000-7000-8000-{900 + n:012d}"]
    assert got["verdict"] == verdict, got["verdict_reason"]
    assert {k: v for k, v in got["outcomes"].items() if v} == counts
    if verdict == "failure":
        assert got["verdict_reason"].startswith(
            "failure: python3 manage.py migrate | tail -3 failed in the last turn"
        )


# --- the pieces -------------------------------------------------------------------------


@pytest.mark.parametrize("runner", _RUNNERS, ids=[r.name for r in _RUNNERS])
def test_each_runners_output_reads_as_it_went(runner: Runner) -> None:
    assert read_output(runner.failing).status == "failed"
    assert read_output(runner.passing).status == ("passed" if runner.passing else None)
    assert read_output(runner.neither).status is None


@pytest.mark.parametrize("runner", _RUNNERS, ids=[r.name for r in _RUNNERS])
def test_the_pipe_hides_the_status_and_the_plain_run_carries_it(runner: Runner) -> None:
    piped = [r for r in runs_in(runner.piped) + builds_in(runner.piped) if not r.carried]
    assert len(piped) == 1, piped
    plain = runs_in(runner.plain)
    assert all(r.carried for r in plain) and builds_in(runner.plain) == ()


def test_a_reason_quotes_the_summary_not_an_error_line_before_it() -> None:
    # A linter lists its findings first: the summary is what a reason quotes.
    assert read_output("a.go:1:1: x (errcheck)\n6 issues:").line == "6 issues:"
    # A compiler's error line decides when nothing sums it up.
    assert read_output("# app\n./main.go:5:2: undefined: foo").line == (
        "./main.go:5:2: undefined: foo"
    )


@pytest.mark.parametrize(
    ("script", "builds"),
    [
        ("cargo build 2>&1 | tail -3", ["cargo build"]),
        ("./mvnw -q package | tail", ["mvn package"]),
        ("mise exec -- go build ./... 2>&1 | tail", ["go build"]),
        ("docker compose build 2>&1 | tail", ["docker compose build"]),
        ("make -j4 2>&1 | tail", ["make"]),
        ("make all 2>&1 | tail", ["make all"]),
        ("cmake --build build 2>&1 | tail", ["cmake --build"]),
        # Not builds, or not hidden by a pipe alone.
        ("make help | head", []),
        ("make test | tail", []),  # a test run, judged as one
        ("go build ./... | tail || true", []),
        ("for p in a b; do go build ./$p 2>&1 | head; done", []),
        ("go build ./... 2>&1 | tail; echo done", []),
        ("set -o pipefail; go build ./... | tail", []),
        ("go run ./cmd/app --help | head", []),
    ],
)
def test_builds_whose_status_only_a_pipe_hid(script: str, builds: list[str]) -> None:
    assert [b.runner for b in builds_in(script)] == builds


@pytest.mark.parametrize(
    ("script", "carried"),
    [
        ("a && b 2>&1 | c", [True, False, True]),
        ("a && b | c", [True, False, True]),
        ("a || b 2>&1 | c", [False, False, True]),
        ("a && b && c 2>&1 | d", [True, True, False, True]),
        ("set -o pipefail; a && b 2>&1 | c", [False, True, True, True]),
    ],
)
def test_a_redirect_before_a_pipe_pipes_only_the_last_command(
    script: str, carried: list[bool]
) -> None:
    # tree-sitter-bash reads "a && b 2>&1 | c" as "(a && b 2>&1) | c"; the shell does not.
    assert list(read_script(script).carried) == carried


@pytest.mark.parametrize(
    ("script", "runner"),
    [
        ("bundle exec rspec spec/a_spec.rb | tail", "rspec"),
        ("./gradlew test | tail", "gradle test"),
        ("bin/rails test test/models | tail", "rails test"),
        ("bazelisk test //app/... | tail", "bazel test"),
        ("python3 -m unittest discover -s tests | tail", "unittest"),
        ("mise exec -- golangci-lint run ./... | tail", "golangci-lint"),
    ],
)
def test_wrapped_runners_are_read(script: str, runner: str) -> None:
    [run] = runs_in(script)
    assert run.runner == runner and not run.carried


@pytest.mark.slow
def test_session_show_quotes_a_build_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = next(r for r in _RUNNERS if r.name == "go build")
    _claude(0, runner, "piped fails").write(home)
    run_once(home)
    done = run_ctl(
        "--db", str(db_path(home)), "session", "show", _claude_sid(0), env=daemon_env(home)
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [marked] = [i for i, line in enumerate(lines) if line.endswith("◀ verdict")]
    assert "✗ TOOL Bash  go build ./... 2>&1 | tail -3" in lines[marked]
    assert lines[marked + 1].strip() == "↳ ./main.go:5:2: undefined: foo"
