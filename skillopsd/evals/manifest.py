"""``evals.yaml``: loading and validating a skill's suites (the user's guide: docs/evals.md).

Validation happens at load and every rejection names the file, suite, case, grader (1-based)
and field, so a typo is a clear error instead of a grader that silently checks something else.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import re2
import yaml

from ..derive._kinds import TOOL_KINDS, known_tool
from ..projections.verdict import VERDICTS

MANIFEST_NAME = "evals.yaml"
# A session's verdicts; ``blocked`` is the seed's word for a session the user or a rule
# stopped, which the verdict calls ``abandoned`` (the graders treat them as one).
OUTCOMES = (*VERDICTS, "blocked")
LABELS = ("good", "bad", "blocked", "neutral")
MATCH_AGENTS = ("claude", "codex", "gemini", "copilot", "cursor", "opencode")


class ManifestError(Exception):
    """A malformed ``evals.yaml``: one line naming where and what."""

    def __init__(
        self,
        file: str,
        message: str,
        *,
        suite: str | None = None,
        case: str | None = None,
        grader: int | None = None,
        field: str | None = None,
    ) -> None:
        where = [file]
        if suite is not None:
            where.append(f"suite {suite!r}")
        if case is not None:
            where.append(f"case {case!r}")
        if grader is not None:
            where.append(f"grader {grader}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join([', '.join(where), message])}")
        self.file = file
        self.suite = suite
        self.case = case
        self.grader = grader
        self.field = field


class Match(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which sessions a case grades: a substring or ``/regex/`` of the first prompt, an agent."""

    prompt: str | None = None
    agent: str | None = None


class Grader(msgspec.Struct, frozen=True, omit_defaults=True):
    """One grader as written (field names kept in Python style; see ``_FIELDS``)."""

    index: int
    type: str
    name: str | None = None
    expect: str | None = None
    on: str = "final_message"
    contains: list[str] = []
    reject: list[str] = []
    sequence: list[str] = []
    expect_tools: list[str] = []
    reject_tools: list[str] = []
    max_tools: int | None = None
    expect_skills: list[str] = []
    reject_skills: list[str] = []
    max_turns: int | None = None
    max_duration_ms: int | None = None


# A replay waits this long for the agent when ``run.timeout`` is not given, and at most a day.
DEFAULT_RUN_TIMEOUT = 600.0
MAX_RUN_TIMEOUT = 86_400.0


class Run(msgspec.Struct, frozen=True, omit_defaults=True):
    """A task ``eval replay`` gives the agent: the prompt, in a fresh copy of ``fixture``
    (relative to the evals.yaml's folder; none: an empty folder) after ``setup`` ran there."""

    prompt: str
    fixture: str | None = None
    timeout: float = DEFAULT_RUN_TIMEOUT
    setup: list[str] = []


class Case(msgspec.Struct, frozen=True):
    name: str
    graders: list[Grader]
    match: Match | None = None
    min_pass_rate: float = 1.0
    run: Run | None = None


class Suite(msgspec.Struct, frozen=True):
    name: str
    cases: list[Case]


class Manifest(msgspec.Struct, frozen=True):
    """A loaded ``evals.yaml``: its exact text, that text's sha256, and the suites."""

    path: str
    text: str
    suite_hash: str
    suites: list[Suite]

    @property
    def suite_names(self) -> list[str]:
        return [s.name for s in self.suites]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. Under YAML 1.1 the key ``on:`` would be ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def suite_hash(text: str) -> str:
    """sha256 of the file's text: the identity a run records and the gate compares."""
    return hashlib.sha256(text.encode()).hexdigest()


class _Where:
    def __init__(self, file: str) -> None:
        self.file = file
        self.suite: str | None = None
        self.case: str | None = None
        self.grader: int | None = None

    def fail(self, message: str, field: str | None = None) -> ManifestError:
        return ManifestError(
            self.file, message, suite=self.suite, case=self.case, grader=self.grader, field=field
        )


def _strings(where: _Where, field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.fail("must be a list of strings", field)
    if any(not v.strip() for v in value):
        raise where.fail("empty string in list", field)
    return list(value)


def _tools(where: _Where, field: str, value: Any) -> list[str]:
    """Tool names, skill names or kinds; a misspelt kind is an error, not a silent miss."""
    names = _strings(where, field, value)
    for name in names:
        if name in TOOL_KINDS or known_tool(name):
            continue
        close = difflib.get_close_matches(name.lower(), TOOL_KINDS, n=1, cutoff=0.75)
        if close:
            raise where.fail(
                f"unknown tool kind {name!r} (did you mean {close[0]!r}? kinds:"
                f" {', '.join(TOOL_KINDS)}; or an agent's tool name such as Bash)",
                field,
            )
    return names


def _rate(where: _Where, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.fail("must be a number from 0 to 1 (e.g. 0.8)", field)
    if not 0 <= value <= 1:
        raise where.fail(f"must be from 0 to 1, got {value}", field)
    return float(value)


def compile_regex(pattern: str) -> Any:
    """An RE2 pattern, compiled quietly: RE2 logs every bad pattern to stderr by default."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def regex_error(exc: Exception) -> str:
    """RE2's reason, as text (it arrives as bytes)."""
    reason = exc.args[0] if exc.args else exc
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _ceiling(where: _Where, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.fail("must be a whole number", field)
    if value <= 0:
        raise where.fail(f"must be positive, got {value}", field)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[_Where, str, Any], str]:
    def check(where: _Where, field: str, value: Any) -> str:
        if value not in options:
            raise where.fail(f"must be one of {'|'.join(options)}, got {value!r}", field)
        return str(value)

    return check


def _on(where: _Where, field: str, value: Any) -> str:
    if value != "final_message":
        raise where.fail(f"only final_message can be graded, got {value!r}", field)
    return "final_message"


Check = Callable[[_Where, str, Any], Any]
# type -> {yaml key: (python field, check, asserts something)}
_FIELDS: dict[str, dict[str, tuple[str, Check, bool]]] = {
    "outcome": {"expect": ("expect", _choice(OUTCOMES), True)},
    "text": {
        "on": ("on", _on, False),
        "contains": ("contains", _strings, True),
        "reject": ("reject", _strings, True),
    },
    "tool_sequence": {"sequence": ("sequence", _tools, True)},
    "tool_constraint": {
        "expectTools": ("expect_tools", _tools, True),
        "rejectTools": ("reject_tools", _tools, True),
        "maxTools": ("max_tools", _ceiling, True),
    },
    "skill_invocation": {
        "expectSkills": ("expect_skills", _strings, True),
        "rejectSkills": ("reject_skills", _strings, True),
    },
    "behavior": {
        "maxTools": ("max_tools", _ceiling, True),
        "maxTurns": ("max_turns", _ceiling, True),
        "maxDurationMs": ("max_duration_ms", _ceiling, True),
    },
    "human_label": {"expect": ("expect", _choice(LABELS), True)},
}
GRADER_TYPES = tuple(_FIELDS)


def _keys(where: _Where, value: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.fail(f"{what} must be a mapping")
    for key in value:
        if key not in allowed:
            raise where.fail(f"unknown key (expected one of: {', '.join(allowed)})", str(key))
    return value


def _name(where: _Where, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.fail(f"{what} needs a non-empty name", "name")
    return value


def _grader(where: _Where, raw: Any) -> Grader:
    if not isinstance(raw, dict):
        raise where.fail("a grader must be a mapping")
    kind = raw.get("type")
    if kind not in _FIELDS:
        raise where.fail(f"unknown type {kind!r} (expected one of: {', '.join(_FIELDS)})", "type")
    fields = _FIELDS[kind]
    _keys(where, raw, ("type", "name", *fields), f"a {kind} grader")
    values: dict[str, Any] = {}
    if "name" in raw:
        values["name"] = _name(where, raw["name"], "a grader")
    asserts = False
    for key, (field, check, assertion) in fields.items():
        if key in raw:
            values[field] = check(where, key, raw[key])
            if assertion and values[field] not in ([], None):
                asserts = True
    if not asserts:
        wanted = ", ".join(k for k, (_, _, a) in fields.items() if a)
        raise where.fail(
            f"a {kind} grader asserts nothing (give {wanted}): a gate that can never fail"
            " is worse than no gate"
        )
    return Grader(index=where.grader or 0, type=kind, **values)


def _match(where: _Where, raw: Any) -> Match:
    _keys(where, raw, ("prompt", "agent"), "match")
    prompt = raw.get("prompt")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt:
            raise where.fail("must be a non-empty string", "match.prompt")
        if len(prompt) >= 2 and prompt.startswith("/") and prompt.endswith("/"):
            try:
                compile_regex(prompt[1:-1])
            except re2.error as exc:
                raise where.fail(
                    f"bad regular expression {prompt!r}: {regex_error(exc)}", "match.prompt"
                ) from None
    agent = raw.get("agent")
    if agent is not None and agent not in MATCH_AGENTS:
        raise where.fail(f"must be one of {'|'.join(MATCH_AGENTS)}", "match.agent")
    if prompt is None and agent is None:
        raise where.fail("match selects nothing (give prompt or agent)", "match")
    return Match(prompt=prompt, agent=agent)


def _run(where: _Where, raw: Any) -> Run:
    allowed = ("prompt", "fixture", "timeout", "setup")
    if not isinstance(raw, dict):
        raise where.fail("must be a mapping (prompt, fixture, timeout, setup)", "run")
    for key in raw:
        if key not in allowed:
            raise where.fail(f"unknown key (expected one of: {', '.join(allowed)})", f"run.{key}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise where.fail("must be a non-empty string (the task the agent is given)", "run.prompt")
    if "\x00" in prompt:
        raise where.fail("must not contain a NUL character", "run.prompt")
    fixture = raw.get("fixture")
    if fixture is not None and (
        not isinstance(fixture, str) or not fixture.strip() or "\x00" in fixture
    ):
        raise where.fail("must be a folder path (relative to the evals.yaml)", "run.fixture")
    timeout = raw.get("timeout", DEFAULT_RUN_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise where.fail("must be a number of seconds", "run.timeout")
    if not 0 < timeout <= MAX_RUN_TIMEOUT:
        raise where.fail(
            f"must be more than 0 and at most {MAX_RUN_TIMEOUT:g} seconds, got {timeout}",
            "run.timeout",
        )
    setup = _strings(where, "run.setup", raw["setup"]) if "setup" in raw else []
    if any("\x00" in command for command in setup):
        raise where.fail("must not contain a NUL character", "run.setup")
    return Run(prompt=prompt, fixture=fixture, timeout=float(timeout), setup=setup)


def parse_manifest(text: str, file: str = MANIFEST_NAME) -> Manifest:
    """Validate ``text`` as an evals.yaml; :class:`ManifestError` names what is wrong."""
    where = _Where(file)
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise where.fail(f"not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise where.fail("not valid YAML: nested too deep") from None
    top = _keys(where, raw, ("version", "suites"), "the file")
    if top.get("version") != 1:
        raise where.fail(f"version must be 1, got {top.get('version')!r}", "version")
    raw_suites = top.get("suites")
    if not isinstance(raw_suites, list) or not raw_suites:
        raise where.fail("at least one suite is required", "suites")
    suites: list[Suite] = []
    for raw_suite in raw_suites:
        where.suite, where.case, where.grader = None, None, None
        if not isinstance(raw_suite, dict):
            raise where.fail("a suite must be a mapping")
        name = _name(where, raw_suite.get("name"), "a suite")
        if name in (s.name for s in suites):
            raise where.fail(f"duplicate suite name {name!r}", "name")
        where.suite = name
        _keys(where, raw_suite, ("name", "cases"), "a suite")
        raw_cases = raw_suite.get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            raise where.fail("at least one case is required", "cases")
        cases: list[Case] = []
        for raw_case in raw_cases:
            where.case, where.grader = None, None
            if not isinstance(raw_case, dict):
                raise where.fail("a case must be a mapping")
            case_name = _name(where, raw_case.get("name"), "a case")
            if case_name in (c.name for c in cases):
                raise where.fail(f"duplicate case name {case_name!r}", "name")
            where.case = case_name
            _keys(where, raw_case, ("name", "graders", "match", "min_pass_rate", "run"), "a case")
            match = _match(where, raw_case["match"]) if "match" in raw_case else None
            rate = (
                _rate(where, "min_pass_rate", raw_case["min_pass_rate"])
                if "min_pass_rate" in raw_case
                else 1.0
            )
            run = _run(where, raw_case["run"]) if "run" in raw_case else None
            raw_graders = raw_case.get("graders")
            if not isinstance(raw_graders, list) or not raw_graders:
                raise where.fail("at least one grader is required", "graders")
            graders = []
            for n, raw_grader in enumerate(raw_graders, 1):
                where.grader = n
                graders.append(_grader(where, raw_grader))
            where.grader = None
            cases.append(
                Case(name=case_name, graders=graders, match=match, min_pass_rate=rate, run=run)
            )
        suites.append(Suite(name=name, cases=cases))
    return Manifest(path=file, text=text, suite_hash=suite_hash(text), suites=suites)


def load_manifest(path: Path) -> Manifest:
    """Read and validate the evals.yaml at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(path), f"cannot read: {exc}") from exc
    return parse_manifest(text, str(path))


__all__ = [
    "GRADER_TYPES",
    "MANIFEST_NAME",
    "TOOL_KINDS",
    "Case",
    "Grader",
    "Manifest",
    "ManifestError",
    "Match",
    "Run",
    "Suite",
    "load_manifest",
    "parse_manifest",
    "suite_hash",
]
