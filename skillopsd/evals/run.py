"""Grading a version's sessions against a manifest: per case ``passed / graded``, and flips.

A session passes a case iff every grader passed; it fails if any judged grader failed; else
(a grader lacked its evidence: no label, no duration) the case did not grade it. A case
passes iff it graded a session and ``passed / graded >= min_pass_rate``; a case that graded
nothing is "not graded", never passed. A run passes iff every case that graded a session
passed and at least one did (a run that proved nothing does not pass).
"""

from __future__ import annotations

import msgspec

from ..events import NewEvent, content_id
from ..events.types import EvalCaseResult, EvalSuiteRegistered, GraderResult
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
            graded = passed = not_graded = 0
            reasons: list[str] = []
            for evidence in evidences:
                verdicts = grade_case(case, evidence)
                if verdicts is None:
                    continue
                failed = any(v.judged and not v.passed for v in verdicts)
                if not failed and not all(v.judged for v in verdicts):
                    not_graded += 1
                    for v in verdicts:  # distinct: two graders may give one reason
                        if not v.judged and v.detail not in reasons:
                            reasons.append(v.detail)
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
                    passed=case_passed(passed, graded, case.min_pass_rate),
                    results=results,
                    not_graded=not_graded,
                    min_pass_rate=case.min_pass_rate,
                    not_graded_reasons=reasons,
                )
            )
    return out


def case_passed(passed: int, graded: int, min_pass_rate: float) -> bool:
    """Graded something, and enough of it passed (exact: 2/3 clears 0.66, not 0.67)."""
    return graded > 0 and passed >= min_pass_rate * graded - 1e-9


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
    # passed/graded on each side: a flip over one session weighs less than one over twenty
    before: str = ""
    after: str = ""


def flips(current: list[EvalCaseResult], baseline: list[EvalCaseResult]) -> list[Flip]:
    """Cases graded in both runs whose verdict changed."""
    before = {(c.suite, c.case): c for c in baseline if c.graded}
    out = []
    for c in current:
        old = before.get((c.suite, c.case))
        if not c.graded or old is None or old.passed == c.passed:
            continue
        out.append(
            Flip(
                c.suite,
                c.case,
                "fail→pass" if c.passed else "pass→fail",
                f"{old.passed_sessions}/{old.graded}",
                f"{c.passed_sessions}/{c.graded}",
            )
        )
    return out


def suite_registration(skill: str, manifest: Manifest) -> NewEvent:
    """The suite a run graded under, recorded once per content (before the run's events)."""
    return NewEvent(
        f"skill:{skill}",
        EvalSuiteRegistered(
            skill=skill,
            suite_hash=manifest.suite_hash,
            path=manifest.path,
            definition=manifest.text,
        ),
        content_id("EvalSuiteRegistered", skill, manifest.suite_hash),
    )
