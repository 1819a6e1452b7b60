"""Grading a version's sessions against a manifest: per case ``passed / graded``, and flips.

A case passes iff every grader passed on every session it selected; a run passes iff every
case that graded a session passed and at least one session was graded (a run that proved
nothing does not pass).
"""

from __future__ import annotations

import msgspec

from ..events.types import EvalCaseResult, GraderResult
from .evidence import Evidence
from .graders import grade_case
from .manifest import Manifest


def grade_version(
    manifest: Manifest, suites: list[str], evidences: list[Evidence]
) -> list[EvalCaseResult]:
    """Every case of the selected ``suites`` over ``evidences`` (sessions of one version)."""
    out = []
    for suite in manifest.suites:
        if suite.name not in suites:
            continue
        for case in suite.cases:
            results: list[GraderResult] = []
            graded = passed = 0
            for evidence in evidences:
                verdicts = grade_case(case, evidence)
                if verdicts is None:
                    continue
                graded += 1
                passed += all(v.passed for v in verdicts)
                results.extend(
                    GraderResult(
                        session_id=evidence.session_id,
                        index=grader.index,
                        type=grader.type,
                        name=grader.name,
                        passed=v.passed,
                        detail=v.detail,
                    )
                    for grader, v in zip(case.graders, verdicts, strict=True)
                )
            out.append(
                EvalCaseResult(
                    suite=suite.name,
                    case=case.name,
                    graded=graded,
                    passed_sessions=passed,
                    passed=passed == graded,
                    results=results,
                )
            )
    return out


def run_passed(cases: list[EvalCaseResult]) -> bool:
    """All graded cases passed, and something was graded."""
    return any(c.graded for c in cases) and all(c.passed for c in cases if c.graded)


def details(case: EvalCaseResult) -> list[str]:
    """The failures of a case, one line each: session, grader and why."""
    return [
        f"{r.session_id[:12]} grader {r.index} {r.name or r.type}: {r.detail}"
        for r in case.results
        if not r.passed
    ]


class Flip(msgspec.Struct, frozen=True):
    """A case whose verdict changed from the baseline run to this one."""

    suite: str
    case: str
    direction: str  # "pass→fail" (a regression) or "fail→pass" (a fix)


def flips(current: list[EvalCaseResult], baseline: list[EvalCaseResult]) -> list[Flip]:
    """Cases graded in both runs whose verdict changed."""
    before = {(c.suite, c.case): c.passed for c in baseline if c.graded}
    out = []
    for c in current:
        key = (c.suite, c.case)
        if not c.graded or key not in before or before[key] == c.passed:
            continue
        out.append(Flip(c.suite, c.case, "fail→pass" if c.passed else "pass→fail"))
    return out
