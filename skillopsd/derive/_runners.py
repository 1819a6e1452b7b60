"""Test and lint runners: which commands run them, what their output says, what a run covers.

A shell call's outcome is its exit status, and the status is often not the runner's:
``go test ./... 2>&1 | tail -20`` reports ``tail``'s, ``pytest; echo done`` ``echo``'s,
``npm test || true`` always 0. When a runner's status is hidden so (``Script.carried``), its
own summary in the output decides the call (:func:`read_output`): a failure summary
(``FAIL``, ``--- FAIL:``, ``N failed``, ``test result: FAILED``, ``Tests: N failed``,
``npm ERR!``, ``Found N errors``, ``N issues``…) makes it a failure, a passing summary
(``ok  pkg``, ``N passed in``, ``test result: ok``, ``All checks passed!``, ``0 issues``…) a
success, and an output that says neither leaves the outcome unknown (``None``, with
``skillops.result.masked``): it is neither counted as a pass nor as a failure. The patterns are
anchored at the start of a line and name numbers, so a runner's test log quoting ``FAIL``
inside a line does not decide; a line that reports one error (``a.c:3:5: error: …``,
``main.go:5:2: undefined: foo``) decides only when no summary does.

Builds are read the same way (:func:`builds_in`: ``cargo build``, ``go build``, ``make``,
``npm run build``, ``docker build``, a compiler), but only where a pipe alone hid their status
(``cargo build | tail -3``): a build the script lets fail on purpose (``| head || true``, a
loop over platforms) keeps the script's status. A Python program whose status a pipe hid
failed when its output ends in a traceback (:func:`_settle_python`). Any other command whose
status a pipe hid and that does more than read is judged by its output's signs too, else
unknown, never by the pipe's status (:func:`_settle_other`).

Which tests a run covers (:func:`covers`) decides whether a later pass resolves an earlier
failure: only a run of the same runner over the same or a wider target set, with no narrower
selection (``-run``, ``-k``, ``-t``), or one that names every test the failed run reported
failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import msgspec

from ._shell import Command, Dialect, _command_of, call_script, read_script
from ._tree import Span, SpanTree, clip

# A runner's id by its command key (``Command.key``); wrappers are resolved first.
_RUNNERS: dict[str, str] = {
    "go test": "go test",
    "go vet": "go vet",
    "pytest": "pytest",
    "py.test": "pytest",
    "python -m pytest": "pytest",
    "python3 -m pytest": "pytest",
    "py -m pytest": "pytest",
    "jest": "jest",
    "vitest": "vitest",
    "mocha": "mocha",
    "npm test": "npm test",
    "npm t": "npm test",
    "yarn test": "yarn test",
    "pnpm test": "pnpm test",
    "bun test": "bun test",
    "deno test": "deno test",
    "cargo test": "cargo test",
    "cargo nextest": "cargo nextest",
    "cargo clippy": "cargo clippy",
    "ruff": "ruff",
    "mypy": "mypy",
    "python -m mypy": "mypy",
    "python3 -m mypy": "mypy",
    "pyright": "pyright",
    "tsc": "tsc",
    "eslint": "eslint",
    "golangci-lint": "golangci-lint",
    "Invoke-Pester": "Invoke-Pester",
    "dotnet test": "dotnet test",
    "mvn test": "mvn test",
    "mvn verify": "mvn verify",
    "gradle test": "gradle test",
    "gradle check": "gradle check",
    "rspec": "rspec",
    "phpunit": "phpunit",
    "swift test": "swift test",
    "tox": "tox",
    "nox": "nox",
    "python -m unittest": "unittest",
    "python3 -m unittest": "unittest",
    "py -m unittest": "unittest",
    "rails test": "rails test",
    "rake test": "rake test",
    "bazel test": "bazel test",
    "ctest": "ctest",
}
# Commands that run another command named by their next words (``uv run pytest``).
_WRAPPING = frozenset(
    {"uv run", "poetry run", "pdm run", "hatch run", "pipenv run", "rye run", "pnpm exec"}
    | {"npm exec", "yarn dlx", "pnpm dlx", "npx", "bunx"}
)
# Programs whose first word is a verb that runs the command after it (``bundle exec rspec``,
# ``mise exec -- go build``), though the shell reader gives them no subcommand.
_WRAPPING_VERBS: dict[str, frozenset[str]] = {
    "bundle": frozenset({"exec"}),
    "mise": frozenset({"exec", "x"}),
}
# Wrappers that are the program they wrap (``./gradlew test`` is ``gradle test``).
_RENAMED = {"gradlew": "gradle", "mvnw": "mvn", "bazelisk": "bazel"}
# Programs whose first plain word is the runner's verb (``bin/rails test``, ``bazel test``).
_VERB_PROGRAMS = frozenset({"rails", "rake", "bazel"})
# Task runners: a target or script named like a check runs one (``make test``, ``npm run lint``).
_CHECK_NAME = re.compile(r"(?:^|[:_-])(?:test|tests|check|lint|vet|verify|typecheck|ci)(?:$|[:_-])")
# Options whose value is not a target (by runner); an unknown ``-x`` is taken to be a flag.
_VALUED: dict[str, frozenset[str]] = {
    "go test": frozenset(
        {"-run", "-skip", "-count", "-timeout", "-tags", "-p", "-parallel", "-bench", "-cpu"}
        | {"-benchtime", "-coverprofile", "-covermode", "-coverpkg", "-o", "-exec", "-ldflags"}
        | {"-gcflags", "-mod", "-C", "-shuffle", "-vet", "-json", "-outputdir", "-list"}
    ),
    "pytest": frozenset(
        {"-k", "-m", "-c", "-p", "-o", "-W", "-n", "--rootdir", "--deselect", "--ignore"}
        | {"--maxfail", "--tb", "--junitxml", "--cov", "--durations", "--log-level", "-r"}
        | {"--basetemp", "--confcutdir", "--import-mode", "--timeout"}
    ),
    "jest": frozenset({"-t", "--testNamePattern", "-c", "--config", "--testPathPattern"}),
    "vitest": frozenset({"-t", "--testNamePattern", "-c", "--config", "--project"}),
    "cargo test": frozenset({"-p", "--package", "--test", "--features", "-j", "--target"}),
}
# Options that narrow a run to part of its targets (their values compared as they are).
_SELECTING: dict[str, frozenset[str]] = {
    "go test": frozenset({"-run", "-skip", "-list"}),
    "pytest": frozenset(
        {"-k", "-m", "--deselect", "--ignore", "--lf", "--last-failed", "--collect-only", "--co"}
    ),
    "jest": frozenset(
        {"-t", "--testNamePattern", "--testPathPattern", "--onlyChanged", "-o", "--listTests"}
    ),
    "vitest": frozenset({"-t", "--testNamePattern", "--project", "--changed"}),
    "cargo test": frozenset({"-p", "--package", "--test", "--lib", "--bins", "--doc"}),
}
# Selections that select no test (the run only builds or collects them). ``-run=XXX`` is Go's
# usual idiom for a pattern that matches no test name (a real value, not a placeholder).
_NO_TESTS = frozenset({"-run=^$", "-run=XXX", "-list=.*", "--collect-only", "--co", "--listTests"})
_SELECTING_ANY = frozenset({"--grep", "-g", "--filter", "--only", "--tests", "-Dtest"})


class Run(msgspec.Struct, frozen=True):
    """One runner invocation in a script: what it runs over and whether its status counts."""

    runner: str  # "go test", "pytest", "npm test", "make test"
    text: str  # the command as written, for a reason line
    targets: tuple[str, ...] = ()  # packages, paths, node ids, as written
    selection: tuple[str, ...] = ()  # narrowing options with their values ("-run=TestX")
    carried: bool = True  # its failure reaches the script's exit status
    through: tuple[Command, ...] = ()  # the later stages of its pipeline ("tail -20")


def runs_in(script: str, dialect: Dialect = "bash") -> tuple[Run, ...]:
    """The runner invocations of ``script``, in order (never raises)."""
    if not _MENTIONS.search(script):
        return ()
    read = read_script(script, dialect)
    carried = read.carried or (False,) * len(read.commands)
    piped = read.piped_into or ((),) * len(read.commands)
    out = []
    for command, reaches, through in zip(read.commands, carried, piped, strict=False):
        run = _run_of(command, reaches)
        if run is not None:
            out.append(msgspec.structs.replace(run, through=through) if through else run)
    return tuple(out)


# A cheap test before a script is parsed: most calls run no runner.
_MENTIONS = re.compile(
    r"\b(?:test|tests|pytest|py\.test|jest|vitest|mocha|ruff|mypy|pyright|tsc|eslint|lint|check"
    r"|vet|clippy|nextest|Pester|rspec|phpunit|tox|nox|verify|golangci-lint|typecheck|ci|unittest"
    r"|ctest)\b"
)
# A script whose commands are all joined by "&&" (no pipe, ";", line break, "||", loop,
# condition or substitution) carries every command's status: nothing is hidden in it.
_MAY_HIDE = re.compile(r"[|;\n&`]|\$\(|\b(?:if|for|while|until|case|set|trap)\b")


def _resolve(command: Command) -> Command:
    """The command a wrapper runs (``uv run pytest`` is ``pytest``, ``npx jest`` is ``jest``,
    ``bundle exec rspec`` is ``rspec``, ``./gradlew test`` is ``gradle test``)."""
    for _ in range(4):
        words = list(command.words)
        renamed = _RENAMED.get(command.program)
        if renamed is not None:
            command = _command_of([renamed, *words], command.text)
            continue
        if command.program in _WRAPPING:  # npx jest: the "subcommand" is the program run
            inner = words
        elif command.key in _WRAPPING and command.subcommand in words:
            inner = words[words.index(command.subcommand) + 1 :]
        elif words[:1] and words[0] in _WRAPPING_VERBS.get(command.program, ()):
            inner = words[1:]
        else:
            return command
        while inner and inner[0].startswith("-"):
            inner = inner[1:]
        if not inner:
            return command
        command = _command_of(inner, command.text)
    return command


def _verb(command: Command) -> tuple[str, list[str]]:
    """A command's key and the words after it (``bin/rails test x`` is ``rails test``)."""
    words = list(command.words)
    if command.subcommand is not None:
        if command.subcommand in words:
            return command.key, words[words.index(command.subcommand) + 1 :]
        if command.subcommand.startswith("-m ") and "-m" in words:
            return command.key, words[words.index("-m") + 2 :]
        return command.key, words
    if command.program in _VERB_PROGRAMS:
        at = next((i for i, w in enumerate(words) if not w.startswith("-")), None)
        if at is not None:
            return f"{command.program} {words[at]}", words[at + 1 :]
    return command.key, words


def _task(command: Command) -> tuple[str, list[str]] | None:
    """A task runner's check target (``make test``, ``npm run lint``) and its other words."""
    found = _task_name(command)
    if found is None or not _CHECK_NAME.search(found[0]):
        return None
    return found[1], found[2]


def _task_name(command: Command) -> tuple[str, str, list[str]] | None:
    """A task runner's target (``make build``, ``npm run lint``): its name, the runner's id
    for it (``make build``, ``npm test``) and the words after it."""
    words = list(command.words)
    if command.program in ("make", "just", "yarn", "pnpm", "bun") and command.subcommand:
        name = command.subcommand
        if name == "run" and command.program != "make":
            rest = words[words.index("run") + 1 :] if "run" in words else []
            name = next((w for w in rest if not w.startswith("-")), "")
    elif command.key == "npm run" or (command.program in ("mise", "task") and words[:1] == ["run"]):
        rest = words[words.index("run") + 1 :] if "run" in words else []
        name = next((w for w in rest if not w.startswith("-")), "")
    elif command.program == "task":
        name = next((w for w in words if not w.startswith("-")), "")
    else:
        return None
    if not name:
        return None
    after = words[words.index(name) + 1 :] if name in words else []
    if command.program in ("npm", "yarn", "pnpm", "bun") and name == "test":
        return name, f"{command.program} test", after
    return name, f"{command.program} {name}", after


def _run_of(command: Command, carried: bool) -> Run | None:
    command = _resolve(command)
    key, after = _verb(command)
    runner = _RUNNERS.get(key) or _RUNNERS.get(command.program)
    words = after if runner is not None and key != command.program else list(command.words)
    if runner is None:
        task = _task(command)
        if task is None:
            return None
        runner, words = task
    if runner == "ruff":
        if words[:1] not in (["check"], ["format"]):
            return None
        words = words[1:]
    if runner == "golangci-lint":
        if words[:1] != ["run"]:
            return None
        words = words[1:]
    if "--" in words:
        words = words[words.index("--") + 1 :]
    targets, selection = _scope(runner, words)
    if _NO_TESTS.intersection(selection) or _builds_only(runner, words):
        return None  # it builds the tests and runs none: a build check, not a test run
    return Run(
        runner=runner, text=command.text, targets=targets, selection=selection, carried=carried
    )


# Builds by their command key (``Command.key``, after wrappers and :func:`_verb`): a build whose
# status a pipe hid is judged by its output like a test run (``cargo build | tail``).
_BUILDS = frozenset(
    {"go build", "go install", "cargo build", "cargo check", "cargo rustc", "cargo install"}
    | {"docker build", "podman build", "dotnet build", "dotnet publish", "swift build"}
    | {"mvn compile", "mvn package", "mvn install", "bazel build", "zig build"}
)
# Programs that only build (compilers, build tools): whatever their arguments.
_BUILDERS = frozenset(
    {"gcc", "g++", "clang", "clang++", "cc", "c++", "javac", "rustc", "ninja", "xcodebuild"}
    | {"msbuild", "webpack", "esbuild", "rollup", "parcel"}
)
# A task runner's target named like a build (``make all``, ``npm run build``).
_BUILD_NAME = re.compile(
    r"(?:^|[:_-])(?:build|compile|bundle|dist|package|all|install|release|bin|binary)(?:$|[:_-])"
)
_BUILD_MENTIONS = re.compile(
    r"\b(?:build|install|check|rustc|compile|package|make|gmake|cmake|ninja|gcc|g\+\+|clang"
    r"|cc|c\+\+|javac|xcodebuild|msbuild|webpack|esbuild|rollup|parcel|buildx|dist|bundle|all"
    r"|publish|release|bin|binary)\b"
)


def builds_in(script: str, dialect: Dialect = "bash") -> tuple[Run, ...]:
    """The builds of ``script`` whose exit status only a pipe hid (``cargo build | tail -3``,
    ``go build``, ``make``, ``npm run build``, ``docker build``, a compiler), in order, as runs;
    not those the script lets fail on purpose (``| head || true``, a loop over platforms), nor
    those whose status it carries (never raises)."""
    if "|" not in script or not _BUILD_MENTIONS.search(script):
        return ()  # a status only a pipe hid needs a pipe (and the script is not read)
    read = read_script(script, dialect)
    piped = read.piped_into or ((),) * len(read.commands)
    out = []
    for command, hidden, through in zip(read.commands, read.hidden_by_pipe, piped, strict=False):
        if not hidden:
            continue
        build = _build_of(command)
        if build is not None and _run_of(command, False) is None:
            out.append(Run(runner=build, text=command.text, carried=False, through=through))
    return tuple(out)


def _build_of(command: Command) -> str | None:
    """The build a command runs, by the id its reason names, or None."""
    command = _resolve(command)
    key, after = _verb(command)
    words = list(command.words)
    if key in _BUILDS or command.program in _BUILDERS:
        return key
    if key in ("docker buildx", "docker compose", "docker image") and "build" in after[:3]:
        return f"{key} build"
    if command.program in ("cmake", "meson") and ("--build" in words or "compile" in words):
        return f"{command.program} --build"
    if command.program in ("make", "gmake"):
        target = command.subcommand
        if target is None or "=" in target:
            return "make"  # its default target: the build
        return f"make {target}" if _BUILD_NAME.search(target) else None
    if command.program == "gradle" and command.subcommand:
        return key if _BUILD_NAME.search(command.subcommand) else None
    task = _task_name(command)
    if task is not None and _BUILD_NAME.search(task[0]) and not _CHECK_NAME.search(task[0]):
        return task[1]
    return None


def _builds_only(runner: str, words: list[str]) -> bool:
    """``go test -c`` (compile the test binary), ``go test -exec=true`` (run it with ``true``)."""
    if runner != "go test":
        return False
    return "-c" in words or any(
        w == "-exec=true" or (w == "-exec" and words[i + 1 : i + 2] == ["true"])
        for i, w in enumerate(words)
    )


def _scope(runner: str, words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    valued = _VALUED.get(runner, frozenset())
    selecting = _SELECTING.get(runner, frozenset()) | _SELECTING_ANY
    targets: list[str] = []
    selection: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            name, eq, value = word.partition("=")
            if not eq and name in valued and i + 1 < len(words):
                value = words[i + 1]
                i += 1
            if name in selecting:
                selection.append(f"{name}={value}" if value or eq else name)
        elif runner == "cargo test":
            selection.append(f"filter={word}")  # a positional cargo argument filters by name
        else:
            targets.append(_normal(word))
        i += 1
    if runner == "go test" and not targets:
        targets = ["."]
    return tuple(sorted(set(targets))), tuple(sorted(set(selection)))


def _normal(target: str) -> str:
    while target.startswith("./") and len(target) > 2:
        target = target[2:]
    return target.rstrip("/") or target


# --- outputs ---------------------------------------------------------------------------

_FAILED = "failed"
_PASSED = "passed"
# A line that says one thing failed (a compiler's "a.c:3:5: error: …"), not how the run ended:
# it decides only when no summary does, and a summary is the line a reason quotes.
_ERROR_LINE = "error line"

# (pattern, what a match says); "count" patterns fail when their first group is not 0.
_SIGNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.MULTILINE), kind)
    for p, kind in (
        # go test / go vet
        (r"^\s*--- FAIL: \S+", _FAILED),
        (r"^FAIL(?:\t|\s+\S+\s|$)", _FAILED),
        (r"^vet: \S+", _FAILED),
        (r"^ok\s+\S+\s+(?:[\d.]+s|\(cached\))", _PASSED),
        (r"^PASS$", _PASSED),
        # pytest (its summary line; -q drops the "=")
        (r"^(?:=+ )?(?:\d+ \w+, )*\d+ (?:failed|errors?)\b.* in [\d.]+s\b", _FAILED),
        (
            r"^(?:=+ )?(?:\d+ \w+, )*\d+ passed\b(?!.*\b(?:failed|errors?)\b).* in [\d.]+s\b",
            _PASSED,
        ),
        (r"^(?:FAILED|ERROR) \S+::\S+", _FAILED),
        # jest / vitest / mocha / bun / node --test (TAP)
        (r"^Tests:\s+(?:\d+ \w+, )*[1-9]\d* failed", _FAILED),
        (r"^Test Suites:\s+(?:\d+ \w+, )*[1-9]\d* failed", _FAILED),
        (r"^Tests:\s+(?!.*failed).*\d+ passed", _PASSED),
        (r"^\s*Tests?(?: Files)?\s+[1-9]\d* failed", _FAILED),
        (r"^\s*Tests\s+\d+ passed(?!.*failed)", _PASSED),
        (r"^\s*[1-9]\d* failing$", _FAILED),
        (r"^\s*\d+ passing \(", _PASSED),
        (r"^\s*[1-9]\d* fail$", _FAILED),
        (r"^# fail [1-9]\d*$", _FAILED),
        # package managers and task runners reporting a failed script
        (r"^npm (?:ERR!|error) ", _FAILED),
        (r"^error Command failed with exit code [1-9]", _FAILED),
        (r"^\s*ERR_PNPM_\w+|^\s*ELIFECYCLE\s", _FAILED),
        (r"^g?make(?:\[\d+\])?: \*\*\* ", _FAILED),  # "Error 2", "No rule to make target"
        (r"^g?make(?:\[\d+\])?: (?:Nothing to be done for |'?\S+'? is up to date)", _PASSED),
        (r"^ERROR task failed$", _FAILED),  # mise
        # cargo
        (r"^test result: FAILED\.", _FAILED),
        (r"^error: (?:could not compile|test failed|\d+ targets? failed)", _FAILED),
        (r"^error\[E\d+\]: ", _ERROR_LINE),
        (r"^test result: ok\.", _PASSED),
        (r"^\s*Finished `?\w+`? (?:profile )?\[.*\] target\(s\) in ", _PASSED),
        # go build / go vet / go install: "# pkg" then "file.go:line:col: message"
        (r"^(?:\.{1,2}/)?[\w./@+-]+\.go:\d+:\d+: \S", _ERROR_LINE),
        # compilers: gcc, clang, javac, swiftc, rustc, MSBuild; ninja, collect2, docker build
        (r"^[\w./\\+-]+:\d+(?::\d+)?: (?:fatal )?error: ", _ERROR_LINE),
        (r"^[\w./\\:+ -]+\(\d+,\d+\): (?:fatal )?error [A-Z]+\d+:", _ERROR_LINE),
        (r"^collect2: error: |^ld: .*error|^ninja: build stopped: ", _FAILED),
        (r"^FAILED: \S", _FAILED),  # ninja, bazel
        (r"^ERROR: failed to (?:solve|build)\b|^The command .* returned a non-zero code", _FAILED),
        (r"^Successfully built [0-9a-f]+$|^#\d+ naming to \S+ (?:[\d.]+s )?done$", _PASSED),
        # front-end bundlers (vite, next, webpack)
        (r"^\s*✓ built in [\d.]+m?s$|^\s*✓ Compiled successfully", _PASSED),
        (r"^(?:webpack \S+ )?compiled successfully\b", _PASSED),
        # ruff, mypy, tsc, eslint, golangci-lint
        (r"^Found [1-9]\d* errors?\b", _FAILED),
        (r"^Found 0 errors?\b", _PASSED),
        (r"^All checks passed!", _PASSED),
        (r"^[1-9]\d* files? would be reformatted", _FAILED),
        (r"^Success: no issues found", _PASSED),
        (r"^\S+\(\d+,\d+\): error TS\d+:|^\S+:\d+:\d+ - error TS\d+:", _FAILED),
        (r"^✖ \d+ problems? \([1-9]\d* errors?", _FAILED),
        (r"^[1-9]\d* issues?[.:]", _FAILED),
        (r"^0 issues\.", _PASSED),
        # Pester, dotnet, maven, gradle, rspec, phpunit
        (r"^Tests Passed: \d+, Failed: [1-9]", _FAILED),
        (r"^Tests Passed: [1-9]\d*, Failed: 0\b", _PASSED),
        (r"^\s*Failed!\s+- Failed:\s+[1-9]|^Test Run Failed\.", _FAILED),
        (r"^\s*Passed!\s+- Failed:\s+0\b|^Test Run Successful\.", _PASSED),
        (
            r"^\[ERROR\] Tests run: .*(?:Failures|Errors): [1-9]|^\[(?:INFO|ERROR)\] BUILD FAILURE",
            _FAILED,
        ),
        (r"^\[ERROR\] Failed to execute goal |^BUILD FAILED|^> Task \S+ FAILED$", _FAILED),
        (r"^\[INFO\] BUILD SUCCESS|^BUILD SUCCESSFUL", _PASSED),
        (r"^\d+ examples?, [1-9]\d* failures?|^Failed examples:$", _FAILED),
        (r"^\d+ examples?, 0 failures", _PASSED),
        # unittest, minitest (rails test), gradle's test task, bazel test, ctest
        (r"^FAILED \((?:failures|errors|unexpected successes)=\d+", _FAILED),
        (r"^OK(?: \((?:skipped|expected failures)=\d+[^)]*\))?$", _PASSED),
        (
            r"^\d+ runs, \d+ assertions, (?:[1-9]\d* failures, \d+|\d+ failures, [1-9]\d*) errors",
            _FAILED,
        ),
        (r"^\d+ runs, \d+ assertions, 0 failures, 0 errors", _PASSED),
        (r"^FAILURE: Build failed|^\d+ tests? completed, [1-9]\d* failed", _FAILED),
        (r"^Executed \d+ out of \d+ tests?: .*\b[1-9]\d* (?:fails?|tests? fail)", _FAILED),
        (r"^//\S+\s+(?:\(cached\) )?(?:FAILED|NO STATUS|TIMEOUT) in ", _FAILED),
        (r"^INFO: Build completed, [1-9]\d* tests? FAILED", _FAILED),
        (r"^Executed \d+ out of \d+ tests?: \d+ tests? pass\.", _PASSED),
        (r"^INFO: Build completed successfully", _PASSED),
        (
            r"^\d+% tests passed, [1-9]\d* tests? failed out of \d+|^The following tests FAILED:",
            _FAILED,
        ),
        (r"^100% tests passed, 0 tests failed out of [1-9]", _PASSED),
        (r"^FAILURES!$", _FAILED),
        # ExUnit (mix test), Pest (php artisan test)
        (r"^\d+ (?:tests?|doctests?|properties)(?:, \d+ \w+)*, [1-9]\d* failures?\b", _FAILED),
        (r"^\d+ tests?, 0 failures\b", _PASSED),
        (r"^\s*Tests:\s+(?:\d+ \w+, )*[1-9]\d* failed", _FAILED),
        (r"^\s*Tests:\s+(?!.*failed)\d+ passed", _PASSED),
        (r"^OK \(\d+ tests?", _PASSED),
    )
)
# A task runner's prefix on the lines of the task it runs (mise: "[lint:go] 1 issues:").
# Not a log level (Maven's "[INFO] BUILD SUCCESS", "[ERROR] Tests run: …"): those are its own.
_TASK_PREFIX = re.compile(r"^\[(?!(?:INFO|ERROR|WARNING|WARN|DEBUG)\] )[\w:./@-]+\] ", re.M)
# Every sign of a kind in one pattern: one scan finds the first failure line.
# Every sign is anchored at a line's start: the scan tries the alternatives only there.
_ANY_FAILED = re.compile(
    "^(?:" + "|".join(f"(?:{p.pattern})" for p, k in _SIGNS if k == _FAILED) + ")", re.M
)
_ANY_ERROR_LINE = re.compile(
    "^(?:" + "|".join(f"(?:{p.pattern})" for p, k in _SIGNS if k == _ERROR_LINE) + ")", re.M
)
_ANY_PASSED = re.compile(
    "^(?:" + "|".join(f"(?:{p.pattern})" for p, k in _SIGNS if k == _PASSED) + ")", re.M
)
# Ids of failed tests a run names (go's top-level test names; pytest node ids).
_FAILED_GO = re.compile(r"^--- FAIL: (\w+)", re.MULTILINE)
_FAILED_GO_PACKAGE = re.compile(r"^FAIL\s+(\S+)\s", re.MULTILINE)
_FAILED_NODE = re.compile(r"^(?:FAILED|ERROR) (\S+::\S+)", re.MULTILINE)
# Outputs longer than this are read at their two ends (the summary is at one of them).
_READ = 16 * 1024


class Reading(msgspec.Struct, frozen=True):
    """What an output says about the runs in it."""

    status: str | None  # "failed", "passed", or None: it does not say
    line: str = ""  # the line that said "failed"
    failed: tuple[str, ...] = ()  # failed test ids it names
    packages: tuple[str, ...] = ()  # go packages it reports failing


@lru_cache(maxsize=512)
def read_output(text: str) -> Reading:
    """The runners' own summaries in ``text`` (see the module docstring)."""
    if len(text) > _READ:
        text = text[: _READ // 4] + "\n" + text[-(_READ - _READ // 4) :]
    text = _TASK_PREFIX.sub("", text)
    failed = _ANY_FAILED.search(text) or _ANY_ERROR_LINE.search(text)
    ids = tuple(dict.fromkeys(_FAILED_GO.findall(text) + _FAILED_NODE.findall(text)))
    packages = tuple(dict.fromkeys(_FAILED_GO_PACKAGE.findall(text)))
    if failed is not None:
        line = text[failed.start() :].split("\n", 1)[0].strip()
        return Reading(_FAILED, " ".join(line.split())[:200], ids, packages)
    passed = _ANY_PASSED.search(text) is not None
    return Reading(_PASSED if passed else None, "", ids, packages)


# --- coverage --------------------------------------------------------------------------


def covers(later: Run, failed: Run, failures: Iterable[str] = ()) -> bool:
    """Whether a pass of ``later`` shows that what ``failed`` tested passes now."""
    if later.runner != failed.runner:
        return False
    if set(later.selection) <= set(failed.selection) and _targets_cover(
        later.runner, later.targets, failed.targets
    ):
        return True
    # A run naming every test that failed (``go test ./x -run 'TestA|TestB'``,
    # ``pytest tests/a.py::test_b``) covers those failures.
    named = [f for f in failures if f]
    if not named:
        return False
    text = " ".join(later.targets + later.selection)
    return all(_names(text, test) for test in named)


def _names(text: str, test: str) -> bool:
    if "::" in test:
        file = test.split("::", 1)[0]
        return any(t in (test, _normal(file)) for t in text.split())
    return re.search(rf"(?<![\w]){re.escape(test)}(?![\w])", text) is not None


def _targets_cover(runner: str, later: tuple[str, ...], failed: tuple[str, ...]) -> bool:
    if not later:
        return True  # the runner's whole default suite
    if not failed:
        return False
    return all(any(_contains(runner, wide, t) for wide in later) for t in failed)


def _contains(runner: str, wide: str, narrow: str) -> bool:
    if wide == narrow or wide in (".", "..."):
        return wide == narrow or runner != "go test" or wide == "..."
    if runner in ("go test", "go vet", "golangci-lint"):
        if wide.endswith("/..."):
            base = wide[: -len("/...")]
            return base in (".", "") or narrow == base or narrow.startswith(base + "/")
        return False
    return narrow.startswith(wide + "/") or narrow.startswith(wide + "::")


# --- a call's outcome when its status was hidden ------------------------------------------

_GREPS = frozenset({"grep", "egrep", "fgrep", "rg"})
# "exit code 1" as the agents report it (Claude "Exit code 1", Codex "Process exited with code
# 1" / "Exit code: 1", Copilot "<exited with exit code 1>").
_EXIT_ONE = re.compile(r"exit(?:ed with)?(?: exit)? code:? 1\b", re.IGNORECASE)
# Claude Code's placeholder for a command that printed nothing.
_NO_OUTPUT = "(Bash completed with no output)"


def settle_hidden(tree: SpanTree) -> None:
    """Read the outcome of every shell call that ran a runner whose status it hid (see the
    module docstring); the call then carries ``skillops.result.masked`` (the runner)."""
    for span in tree.spans.values():
        if span.kind != "TOOL" or span.output is None or span.outcome not in _SETTLED:
            continue
        tool = str(span.attributes.get("gen_ai.tool.name", span.name))
        # The whole input (a deciding command can sit past the emitted attribute's clip).
        arguments = span.arguments or span.attributes.get("gen_ai.tool.call.arguments")
        found = call_script(tool, arguments)
        if found is None:
            continue
        if not _MAY_HIDE.search(found[0].replace("&&", "")) and found[1] == "bash":
            continue
        # Test and lint runs whose status is hidden, and builds whose status a pipe hid.
        hidden = [r for r in runs_in(*found) if not r.carried]
        hidden += builds_in(*found)
        if not hidden:
            _settle_other(span, found)
            continue
        if span.outcome == "failure" and not _grep_found_nothing(found, span.output):
            continue  # it failed for a reason of its own (a timeout, a build error it carried)
        reading = read_output(span.output.replace(_NO_OUTPUT, ""))
        if reading.status == _PASSED and not all(_shows_failure(r, span.output) for r in hidden):
            reading = Reading(None)  # a filter could have dropped its failure: it does not say
        if reading.status is None and _silent_pass(found, hidden, span.output):
            reading = Reading(_PASSED)
        span.attributes["skillops.result.masked"] = hidden[0].text
        if reading.status == _FAILED:
            span.outcome = "failure"
            span.attributes["skillops.result.error"] = clip(span.output, 2000)
            span.attributes["skillops.result.summary"] = reading.line
        else:
            span.outcome = "success" if reading.status == _PASSED else None
            span.attributes.pop("skillops.result.error", None)


_SETTLED = frozenset({"success", "failure"})
# A Python program that died on an exception: its traceback ends the output (a frame line, then
# "ModuleNotFoundError: No module named 'foo'"), however much of its start a tail cut.
_PYTHONS = frozenset({"python", "python3", "py", "pypy3"})
_FRAME = re.compile(r'^(?:Traceback \(most recent call last\):|  File ".*", line \d+)', re.M)
_EXCEPTION = re.compile(r"\A[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?:: .*)?\Z")
# What an agent appends after a command's own output (Claude Code's note on a reset cwd).
_AFTER = re.compile(r"\AShell cwd was reset to ")


def _settle_python(span: Span, found: tuple[str, Dialect]) -> bool:
    """A Python program whose status only a pipe hid and whose output ends in a traceback
    (``python manage.py migrate 2>&1 | tail -3``) failed (whether it did: any other output is
    read by :func:`_settle_other`)."""
    if span.outcome != "success" or span.output is None or not _FRAME.search(span.output):
        return False
    read = read_script(*found)
    hidden = [
        command.text
        for command, by_pipe in zip(read.commands, read.hidden_by_pipe, strict=False)
        if by_pipe and _resolve(command).program in _PYTHONS
    ]
    lines = [line.strip() for line in _PLACEHOLDERS.sub("", span.output).splitlines()]
    lines = [line for line in lines if line and not _AFTER.match(line)]
    if not hidden or not lines or not _EXCEPTION.match(lines[-1]):
        return False
    span.attributes["skillops.result.masked"] = hidden[0]
    span.outcome = "failure"
    span.attributes["skillops.result.error"] = clip(span.output, 2000)
    span.attributes["skillops.result.summary"] = lines[-1][:200]
    return True


# Failure signs of programs that are no test runner or build, read only where a pipe hid
# their status: terraform's "Error: …" (in its box: "│ Error: …"), kubectl's "error: …" and
# "Error from server (…)", a Python traceback's last line (below).
_OTHER_FAILED = re.compile(r"^(?:│ )?Error: \S|^error: \S|^Error from server\b", re.M)
# The programs those signs are theirs (any other program may print "error: …" as data).
_OTHER_SIGNS = frozenset({"terraform", "tofu", "terragrunt", "kubectl", "oc", "helm"})
# Their passing signs: terraform's plan and apply summaries, kubectl's applied objects.
_OTHER_PASSED = re.compile(
    r"^(?:Plan: \d+ to add|No changes\. |Apply complete! |Destroy complete! )"
    r"|^[\w.-]+/[\w.-]+ (?:created|configured|unchanged|deleted)$",
    re.M,
)
# Programs that only read or show (beyond the deriver's look-ups): a pipe hiding their status
# hides nothing that changed anything.
_READ_ONLY = frozenset(
    {"curl", "wget", "ps", "du", "df", "free", "uname", "id", "whoami", "hostname", "printenv"}
    | {"strings", "xxd", "od", "hexdump", "base64", "sha256sum", "sha1sum", "md5sum", "shasum"}
    | {"readlink", "realpath", "basename", "dirname", "ls-files", "column", "less", "more"}
    | {"journalctl", "dmesg", "lsof", "netstat", "ss", "top", "history", "seq", "yes", "tac"}
    | {"rev", "paste", "join", "comm", "xargs", "zcat", "gzip", "gunzip", "unzip", "tar", "tee"}
)
_READ_ONLY_KEYS = frozenset(
    {"kubectl get", "kubectl describe", "kubectl logs", "docker ps", "docker logs"}
    | {"docker images", "docker inspect", "npm ls", "npm view", "pip list", "pip show"}
    | {"pip3 list", "pip3 show", "pip freeze", "pip3 freeze", "git reflog", "git stash list"}
    | {"go mod", "cargo tree", "cargo metadata", "brew list", "apt list", "systemctl status"}
)


_ASKS_HELP = frozenset({"--help", "-h", "help", "--version", "-V", "version"})


def _only_reads(command: Command) -> bool:
    """Whether a command only looks (a read, a search, a listing, a fetch that prints)."""
    from ._ending import _looks  # _ending imports this module: resolved on first use

    if command.key in _READ_ONLY_KEYS or command.program in _READ_ONLY:
        return True
    if _ASKS_HELP.intersection(command.words[-1:]):
        return True  # "bd create --help", "app version": it prints, it does not act
    return _looks(command)


def _runner_check(command: Command) -> bool:
    """A listed runner that runs no test (``go test -run '^$' -exec=true``): a build check the
    runner reading leaves out on purpose (an agent trying which platforms build)."""
    resolved = _resolve(command)
    key, _after = _verb(resolved)
    return key in _RUNNERS or resolved.program in _RUNNERS or _task(resolved) is not None


def _settle_other(span: Span, found: tuple[str, Dialect]) -> None:
    """Any other command whose status only a pipe hid and that does more than look
    (``mix test | tail``, ``terraform plan | tail``, ``kubectl apply | tail``, a Python
    program): its output decides, never the pipe's status (review H3). A failure sign (a
    runner's, terraform's ``Error:``, kubectl's ``error:``/``Error from server``, a traceback
    at the end) makes it a failure; a passing sign a success where a failure would have
    shown through what it was piped into; an output that says neither leaves it unknown."""
    if span.outcome != "success" or span.output is None or "|" not in found[0]:
        return  # no pipe, nothing a pipe hid (and the script is not read)
    read = read_script(*found)
    piped = read.piped_into or ((),) * len(read.commands)
    hidden = [
        (command, through)
        for command, by_pipe, through in zip(
            read.commands, read.hidden_by_pipe, piped, strict=False
        )
        if by_pipe and not _only_reads(_resolve(command)) and not _runner_check(command)
    ]
    if not hidden:
        return
    output = _PLACEHOLDERS.sub("", span.output)
    if _settle_python(span, found):
        return
    reading = read_output(output)
    if reading.status != _FAILED and any(_resolve(c).program in _OTHER_SIGNS for c, _ in hidden):
        other = _OTHER_FAILED.search(output)
        if other is not None:
            line = output[other.start() :].split("\n", 1)[0]
            reading = Reading(_FAILED, " ".join(line.split())[:200])
        elif reading.status is None and _OTHER_PASSED.search(output):
            reading = Reading(_PASSED)
    runs = [Run(runner="", text=c.text, carried=False, through=t) for c, t in hidden]
    if reading.status == _PASSED and not all(_shows_failure(r, span.output) for r in runs):
        reading = Reading(None)
    span.attributes["skillops.result.masked"] = hidden[0][0].text
    if reading.status == _FAILED:
        span.outcome = "failure"
        span.attributes["skillops.result.error"] = clip(span.output, 2000)
        span.attributes["skillops.result.summary"] = reading.line
    else:
        span.outcome = "success" if reading.status == _PASSED else None
        span.attributes.pop("skillops.result.error", None)


# Runners that print nothing when they pass (golangci-lint before 1.60 did not say "0 issues"),
# and builds that print nothing when they pass (``go build``, a compiler).
_SILENT = frozenset(
    {"go vet", "tsc", "eslint", "golangci-lint", "go build", "go install"}
    | {"gcc", "g++", "clang", "clang++", "cc", "c++", "javac", "rustc"}
)
# Commands that pass their input on whole at one end, or print only what the script says.
_PASSING_ON = frozenset({"head", "tail", "cat", "tee", "echo", "printf", "cd", "true", ":"})
# What the agents print for a command that printed nothing, or after its output.
_PLACEHOLDERS = re.compile(
    r"\(Bash completed with no output\)|<exited with exit code 0>"
    r"|<shellId: \S+ completed with exit code 0>"
)
# A redirect that sends output elsewhere ("2>&1" and ">&2" keep it in the call's output).
_AWAY = re.compile(r"(?<![0-9&])>(?!&)|[0-9]>(?!&)")


def _silent_pass(found: tuple[str, Dialect], hidden: list[Run], output: str) -> bool:
    """Whether runners that print nothing when they pass printed nothing: the whole output is
    empty but for what the script echoes itself, and nothing in the script could have dropped
    their lines (``go vet ./... 2>&1 | head -20 && echo VET-OK`` printing only ``VET-OK``)."""
    if not all(run.runner in _SILENT for run in hidden) or _AWAY.search(found[0]):
        return False
    read = read_script(*found)
    runners = {run.text for run in hidden}
    said: set[str] = set()
    for command in read.commands:
        if command.program in ("echo", "printf"):
            said.add(" ".join(w for w in command.words if not w.startswith("-")).strip())
        elif (
            command.program not in _PASSING_ON
            and command.text not in runners
            and not _RUNS_QUIETLY.match(command.key)
        ):
            return False
    rest = [line for line in _PLACEHOLDERS.sub("", output).splitlines() if line.strip()]
    return all(line.strip() in said for line in rest)


# Builds that print nothing when they pass (before a silent runner: ``go build && go vet``).
_RUNS_QUIETLY = re.compile(r"\Ago (?:build|vet)\Z|\Agofmt\Z")


# A failure line of each runner, to try a filter on: a filter that lets none of its runner's
# through could have hidden a failure behind a passing line ("go test | grep ^ok").
_FAILURE_LINES: dict[str, tuple[str, ...]] = {
    "go test": ("FAIL\tapp/x\t0.01s", "--- FAIL: TestX (0.00s)", "FAIL"),
    "go vet": ("vet: a.go:1:2: x declared and not used",),
    "pytest": ("=== 1 failed, 2 passed in 0.10s ===", "FAILED tests/a.py::test_x - boom"),
    "cargo test": ("test result: FAILED. 1 passed; 1 failed", "error: could not compile `x`"),
    "ruff": ("Found 1 error.",),
    "mypy": ("Found 1 error in 1 file (checked 2 source files)",),
    "golangci-lint": ("1 issues:",),
    "Invoke-Pester": ("Tests Passed: 1, Failed: 1, Skipped: 0",),
    "unittest": ("FAILED (failures=1)", "FAILED (errors=1)"),
    "rspec": ("3 examples, 1 failure", "Failed examples:"),
    "rails test": ("3 runs, 5 assertions, 1 failures, 0 errors, 0 skips",),
    "bazel test": ("FAILED: Build did NOT complete successfully", "//a:b_test   FAILED in 0.4s"),
    "ctest": ("90% tests passed, 1 tests failed out of 10", "The following tests FAILED:"),
    "go build": ("./main.go:5:2: undefined: foo",),
    "cargo build": ("error[E0425]: cannot find value `x`", "error: could not compile `app`"),
    "docker build": ("ERROR: failed to solve: process did not complete successfully",),
}
_ANY_FAILURE_LINES = (
    "Tests:       1 failed, 2 passed, 3 total",
    "      Tests  1 failed | 2 passed (3)",
    "  1 failing",
    "npm ERR! Test failed.",
    "npm error code 1",
    "make: *** [Makefile:2: test] Error 1",
    "BUILD FAILED in 2s",
    "FAILURE: Build failed with an exception.",
    "src/a.c:3:5: error: expected ';'",
    *(line for lines in _FAILURE_LINES.values() for line in lines),
)
_HEAD_COUNT = re.compile(r"\A-(?:n\s*)?(\d+)\Z")
_SED_RANGE = re.compile(r"\A'?(?:1,)?(\d+)p'?\Z")


def _shows_failure(run: Run, output: str) -> bool:
    """Whether a failure of ``run`` would have shown in ``output`` through the stages it was
    piped into: ``tail``, ``tee`` and ``cat`` pass its end on; ``head -N`` (``sed -n 1,Np``)
    only when fewer than N lines came out; ``grep`` only when its pattern lets a failure line
    of the runner through; anything else may drop it."""
    lines = len([line for line in _PLACEHOLDERS.sub("", output).splitlines() if line.strip()])
    samples = _FAILURE_LINES.get(run.runner, _ANY_FAILURE_LINES)
    for k, stage in enumerate(run.through):
        last = all(s.program in ("tee", "cat") for s in run.through[k + 1 :])
        if stage.program in ("tail", "tee", "cat"):
            continue
        if stage.program == "head" or (stage.program == "sed" and "-n" in stage.words):
            limit = _limit(stage)
            if limit is None or not last or lines >= limit:
                return False
            continue
        if stage.program in _GREPS:
            samples = _grepped(stage, samples)
            if not samples:
                return False
            continue
        return False
    return True


def _limit(stage: Command) -> int | None:
    if stage.program == "head":
        words = [w for w in stage.words if w != "--"]
        if not words:
            return 10
        joined = " ".join(words[:2])
        found = _HEAD_COUNT.match(words[0]) or _HEAD_COUNT.match(joined)
        return int(found.group(1)) if found else None
    found = next((m for w in stage.words if (m := _SED_RANGE.match(w))), None)
    return int(found.group(1)) if found else None


def _grepped(stage: Command, samples: tuple[str, ...]) -> tuple[str, ...]:
    """The sample lines a ``grep`` stage lets through (none when it cannot be read)."""
    flags = "".join(w[1:] for w in stage.words if w.startswith("-") and not w.startswith("--"))
    if set(flags) & set("cqlLoh") or any(w.startswith("--") for w in stage.words):
        return ()  # counts, names or parts: not the lines themselves
    patterns = [w for w in stage.words if not w.startswith("-")][:1]
    if not patterns:
        return ()
    pattern = patterns[0]
    if "E" not in flags and stage.program == "grep":  # basic syntax: \| is alternation
        pattern = pattern.replace("\\|", "|").replace("\\(", "(").replace("\\)", ")")
    if "F" in flags or stage.program == "fgrep":
        pattern = re.escape(pattern)
    try:
        compiled = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error:
        return ()
    inverted = "v" in flags
    return tuple(s for s in samples if (compiled.search(s) is not None) != inverted)


def _grep_found_nothing(found: tuple[str, Dialect], output: str) -> bool:
    """Whether a failed call's status is a ``grep`` at its end that matched nothing."""
    if not _EXIT_ONE.search(output[:300]) and not _EXIT_ONE.search(output[-300:]):
        return False
    read = read_script(*found)
    return any(
        c.program in _GREPS and carried
        for c, carried in zip(read.commands, read.carried, strict=False)
    )
