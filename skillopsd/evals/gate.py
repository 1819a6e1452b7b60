"""The promote gate: a version clears only on its newest eval run under the suite as it is now.

Rules, in order: the newest run of that exact version whose suite hash is the current file's
is the only evidence (a newer failure is never outweighed by an older pass; a run under an
older file does not count); it must have graded every suite of the file (a narrower run
proves less), passed, and graded at least ``min_sessions`` distinct sessions (so re-running
one lucky session does not clear it).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..projections.skill_views import RunRow

GATE_POLICY = "gate"


class GatePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``PolicySet gate``: how many distinct graded sessions a passing run needs."""

    min_sessions: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 3


class GateDecision(msgspec.Struct, frozen=True):
    """Cleared or refused, why, and the run and sessions it rested on."""

    cleared: bool
    reason: str
    run: RunRow | None
    sessions_graded: list[str]
    min_sessions: int


def decide(
    runs: list[RunRow],
    *,
    tag: str,
    suite_hash: str,
    suites: list[str],
    min_sessions: int,
    command: str,
    captured: int | None = None,
) -> GateDecision:
    """The gate over ``runs`` (one version's, newest first) for the current suite file.

    ``captured`` (sessions that loaded the version so far) only sharpens the refusal message.
    """
    current = [r for r in runs if r.suite_hash == suite_hash]
    if not current:
        older = " (its runs used an earlier evals.yaml)" if runs else ""
        have = ""
        if captured is not None:
            short = max(0, min_sessions - captured)
            have = f"; {captured} captured so far" + (f", {short} more needed" if short else "")
        return GateDecision(
            False,
            f"no eval run of {tag} under the suite as it is now{older}; run `{command}` over"
            f" at least {min_sessions} sessions that loaded {tag}{have}",
            None,
            [],
            min_sessions,
        )
    run = current[0]
    graded = run.graded_sessions
    if sorted(run.suites) != sorted(suites):
        missing = sorted(set(suites) - set(run.suites))
        return GateDecision(
            False,
            f"the newest run of {tag} ({run.run_id[:12]}) graded only suites {sorted(run.suites)},"
            f" not {missing}; run `{command}` without --suite",
            run,
            graded,
            min_sessions,
        )
    if not run.passed:
        return GateDecision(
            False,
            f"the newest run of {tag} ({run.run_id[:12]}) failed; an older pass does not count",
            run,
            graded,
            min_sessions,
        )
    if len(graded) < min_sessions:
        need = min_sessions - len(graded)
        return GateDecision(
            False,
            f"the newest run of {tag} ({run.run_id[:12]}) passed but graded {len(graded)}"
            f" distinct session(s); min_sessions is {min_sessions}: {need} more needed"
            f" (capture more sessions of {tag}, then `{command}`)",
            run,
            graded,
            min_sessions,
        )
    return GateDecision(
        True,
        f"the newest run of {tag} ({run.run_id[:12]}) passed over {len(graded)} distinct sessions",
        run,
        graded,
        min_sessions,
    )
