"""The graders: pure functions of (grader spec, evidence) → passed and, on failure, why."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgspec

from .evidence import WITHHELD, Evidence, ToolCall
from .manifest import Case, Grader, Match, compile_regex


class Graded(msgspec.Struct, frozen=True):
    """One grader's verdict on one session; ``judged`` False when the evidence it needs is
    missing (no label, no duration): then it neither passed nor failed."""

    passed: bool
    detail: str = ""
    judged: bool = True


def _not_judged(why: str) -> Graded:
    return Graded(False, why, judged=False)


def _calls(sequence: list[ToolCall]) -> str:
    return "[" + ", ".join(c.tool or c.name for c in sequence) + "]"


def _outcome(g: Grader, e: Evidence) -> Graded:
    expect = "abandoned" if g.expect == "blocked" else g.expect
    if e.outcome is not None and e.outcome == expect:
        return Graded(True)
    return Graded(False, f"outcome {e.outcome or 'unknown'}, expected {g.expect}")


def _text(g: Grader, e: Evidence) -> Graded:
    if e.text_withheld:
        return _not_judged(WITHHELD)
    text = e.final_message
    missing = [c for c in g.contains if c not in text]
    found = [r for r in g.reject if r in text]
    if not missing and not found:
        return Graded(True)
    parts = []
    if missing:
        parts.append(f"final message lacks {missing}")
    if found:
        parts.append(f"final message contains rejected {found}")
    return Graded(False, "; ".join(parts))


def _subsequence(wanted: list[str], calls: list[ToolCall]) -> int:
    """How many of ``wanted`` match, in order, a not necessarily contiguous run of ``calls``."""
    matched = 0
    for call in calls:
        if matched < len(wanted) and call.is_(wanted[matched]):
            matched += 1
    return matched


def _tool_sequence(g: Grader, e: Evidence) -> Graded:
    matched = _subsequence(g.sequence, e.tool_sequence)
    if matched == len(g.sequence):
        return Graded(True)
    return Graded(
        False,
        f"sequence {g.sequence} not found in order in {_calls(e.tool_sequence)}"
        f" (stopped at {g.sequence[matched]!r})",
    )


def _tool_constraint(g: Grader, e: Evidence) -> Graded:
    parts = []
    missing = [t for t in g.expect_tools if not any(c.is_(t) for c in e.tool_sequence)]
    if missing:
        parts.append(f"expected tools not used: {missing}")
    rejected = [t for t in g.reject_tools if any(c.is_(t) for c in e.tool_sequence)]
    if rejected:
        parts.append(f"rejected tools used: {rejected}")
    if g.max_tools is not None and e.tools > g.max_tools:
        parts.append(f"{e.tools} tool calls > maxTools {g.max_tools}")
    if parts:
        return Graded(False, "; ".join(parts) + f" in {_calls(e.tool_sequence)}")
    return Graded(True)


def _skill_invocation(g: Grader, e: Evidence) -> Graded:
    parts = []
    missing = [s for s in g.expect_skills if s not in e.skills]
    if missing:
        parts.append(f"skills not loaded: {missing}")
    rejected = [s for s in g.reject_skills if s in e.skills]
    if rejected:
        parts.append(f"rejected skills loaded: {rejected}")
    return Graded(False, "; ".join(parts)) if parts else Graded(True)


def _behavior(g: Grader, e: Evidence) -> Graded:
    parts = []
    if g.max_tools is not None and e.tools > g.max_tools:
        parts.append(f"{e.tools} tool calls > maxTools {g.max_tools}")
    if g.max_turns is not None and e.turns > g.max_turns:
        parts.append(f"{e.turns} model turns > maxTurns {g.max_turns}")
    if g.max_duration_ms is not None:
        if e.duration_ms is None:
            if not parts:
                return _not_judged("no duration reported (missing is not zero)")
        elif e.duration_ms > g.max_duration_ms:
            parts.append(f"{e.duration_ms} ms > maxDurationMs {g.max_duration_ms}")
    return Graded(False, "; ".join(parts)) if parts else Graded(True)


def _human_label(g: Grader, e: Evidence) -> Graded:
    if e.label is None:
        return _not_judged("not labelled")
    if e.label == g.expect:
        return Graded(True)
    return Graded(False, f"label {e.label}, expected {g.expect}")


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    return compile_regex(pattern)


GRADERS: dict[str, Callable[[Grader, Evidence], Graded]] = {
    "outcome": _outcome,
    "text": _text,
    "tool_sequence": _tool_sequence,
    "tool_constraint": _tool_constraint,
    "skill_invocation": _skill_invocation,
    "behavior": _behavior,
    "human_label": _human_label,
}


def grade(grader: Grader, evidence: Evidence) -> Graded:
    """Apply one grader to one session's evidence."""
    return GRADERS[grader.type](grader, evidence)


def matches(match: Match | None, evidence: Evidence) -> bool:
    """Whether a case with ``match`` grades this session (no match: every session)."""
    if match is None:
        return True
    if match.agent is not None and evidence.agent != match.agent:
        return False
    if match.prompt is not None:
        pattern = match.prompt
        if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
            return _regex(pattern[1:-1]).search(evidence.first_prompt) is not None
        return pattern in evidence.first_prompt
    return True


def grade_case(case: Case, evidence: Evidence) -> list[Graded] | None:
    """Every grader of ``case`` on one session, or None when the case does not select it.

    A case with a ``run`` task and no ``match`` selects only the replays of its own task: its
    graders were written for the answer to that task, not to whatever else was captured.
    """
    if case.run is not None and case.match is None:
        if evidence.replay_case != case.name:
            return None
        return [grade(g, evidence) for g in case.graders]
    if evidence.text_withheld and case.match is not None and case.match.prompt is not None:
        # Whether the case selects this session depends on its prompt, which is withheld.
        return [_not_judged(WITHHELD) for _ in case.graders]
    if not matches(case.match, evidence):
        return None
    return [grade(g, evidence) for g in case.graders]
