"""The session verdict rule, its values and reasons, and its parameters (a ``PolicySet`` named
``verdict``). This docstring is where the verdict values are defined.

The verdict says how the session *ended*, from facts the deriver put on its spans
(``derive/_ending.py``). In order, the first that holds:

- ``abandoned``: the user stopped the end of it: the last turn was interrupted while it had
  calls (an interrupt after the answer, or of a bare "exit", is the user leaving), or the last
  call that decides anything was blocked (rejected, denied, refused by a rule or a hook) and
  nothing came after it (a call whose outcome is unknown is something: it ran);
- ``unfinished``: the last turn has no final answer and was not interrupted: the file ends with
  a call still waiting for its result, or after calls with no answer to the user (a session
  still being written reads ``running`` in ``sessions`` and ``session show`` until it settles:
  no line for the settle time, or the agent wrote its end);
- none: no call has an outcome (bookkeeping calls do not count), and the last turn ended (an
  answer, or an empty response);
- ``failure``: at least ``unresolved_min`` calls of the last ``tail_turns`` turns that did work
  (a turn that only looked, kept the to-do list or had no call, such as a closing "thanks",
  does not count) failed and
  no later call of the same kind succeeded (same tool; a shell command's deciding program and
  subcommand; an edit's file, whatever the edit tool; a test or lint run only by a later run
  of the same runner covering at least what failed: the same or wider targets and no narrower
  selection, or one naming the tests that failed: after a failed ``go test ./...`` a passing
  ``go test ./users/...`` is "only a narrower" run), or more than ``failure_share`` of all
  calls failed (a look-up that found nothing, such as a ``grep`` with no match, an edit that
  would have changed nothing, and a command the sandbox refused an operation count for neither);
- ``success`` otherwise: failures the agent got past and blocks the user worked around earlier
  in the session do not spoil it.

Bookkeeping calls (to-do lists, plans: ``TodoWrite``, ``update_plan``, ``write_todos``, …)
never decide, and never hide a block before them. A call whose outcome is unknown (a test run
or build whose status a pipe hid and whose output says neither pass nor fail) is no pass and no
failure: it resolves nothing, is not counted in ``failure_share``, and alone gives no verdict;
but it ran: after a block it is something that came after, and an interrupt of a turn whose
only calls it is stopped work (``abandoned``).
Every verdict but success carries a reason: one line and the ids of the spans that decided it.

Defaults: ``tail_turns=1``, ``unresolved_min=1``, ``failure_share=0.8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

POLICY_NAME = "verdict"
VERDICTS = ("success", "failure", "abandoned", "unfinished")
# How a verdict counts in a success rate, the one rule for every rate (``skill show``, ``skills``,
# the dashboard, an A/B test's executions): ``abandoned`` is a failure (the user gave up on the
# work, what a skill exists to avoid); ``unfinished`` (the transcript stops with a call pending,
# as one copied while a push waited for approval) and no verdict say nothing of how the work came
# out, so they are in no rate's n.
COUNTED = {"success": "success", "failure": "failure", "abandoned": "failure"}
# The values in one paragraph, for ``--help`` and ``policy show verdict``.
SUMMARY = (
    "abandoned: the user interrupted the last turn, or the last call that decides was blocked;"
    " unfinished: the last turn has no final answer (a call still pending, or calls and no"
    " answer), shown as running while the session is still being written; failure: a call of"
    " the last tail_turns turns that did work (a turn that only looked or said thanks does"
    " not count) failed and nothing of the same kind (for a test run, one"
    " covering what failed) passed after it, or more than failure_share of the calls failed;"
    " success: otherwise; none: no call has an outcome."
    " A test run or build whose exit status a pipe hid (go test | tail, cargo build | tail)"
    " counts by its own output: its failure or pass summary, else unknown (?), which neither"
    " fails the session nor resolves an earlier failure."
    " Each verdict but success has a one-line reason and its deciding spans."
)
# Shown, never stored: an unfinished session whose files are still being written.
RUNNING = "running"
# Keys of earlier versions of the rule: a stored PolicySet holding them still applies the rest.
_RETIRED = frozenset({"blocked_min"})
# ``skillops.turn.aborted`` values that mean the user stopped the turn (Claude Code and Codex
# "interrupted", Gemini CLI's "Request cancelled.", Copilot CLI's abort reasons). Any other
# value is a turn the agent stopped: ended, but not by the user.
USER_STOPS = frozenset({"interrupted", "cancelled", "user_initiated", "user_abort"})
# What ``--content derived`` sends instead of an aborted value not in USER_STOPS (the agent's
# own reason may be text): the verdict reads only "aborted, by the user or not".
OTHER_STOP = "aborted"
# A reason names at most this many spans.
MAX_SPANS = 10


class VerdictPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of the verdict rule."""

    tail_turns: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    unresolved_min: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    failure_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.8

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> VerdictPolicy:
        """The policy from a ``PolicySet``'s values (unknown keys and bad values are errors)."""
        current = {k: v for k, v in values.items() if k not in _RETIRED}
        return msgspec.convert(current, cls, strict=False)


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One call as the verdict sees it (in time order within :class:`SessionEnd`)."""

    span_id: str
    outcome: str | None  # None: it never got a result
    turns_from_end: int | None = None
    # The same, counting only turns that did work (None: a derivation older than the fact).
    work_turns_from_end: int | None = None
    resolved: bool = False
    harmless: bool = False  # a look-up that found nothing, a no-op edit, a sandbox refusal
    bookkeeping: bool = False
    pending: bool = False  # the file ends while it waits for its result
    what: str = ""  # "go test ./...", "Edit main.go"
    why: str = ""  # the first line of its error
    narrower: str = ""  # a later pass of the same runner over less than failed
    turn: int | None = None  # its top-level turn's number
    unknown: bool = False  # it ran, but whether it passed is unknown (outcome None)


class SessionEnd(msgspec.Struct, frozen=True, kw_only=True):
    """What the verdict weighs about one session (folded from its spans)."""

    calls: list[Call]
    last_turn: int | None = None  # the last top-level turn's number
    last_turn_span: str | None = None
    interrupted: bool = False  # the last turn, which had calls, was interrupted by the user
    end: str | None = None  # how the last turn ended: answered | empty | pending | silent
    api_error: bool = False  # the model's API failed at the end of the last turn


class Verdict(msgspec.Struct, frozen=True):
    """A verdict, the one line that says why, and the spans that decided it."""

    value: str | None
    reason: str | None = None
    spans: list[str] = []


def _in_turn(turn: int | None) -> str:
    return f"turn {turn}" if turn is not None else "the last turn"


def _line(text: str) -> str:
    """Text fit for one line of a reason (facts are derived, but a reason is one line)."""
    return " ".join(text.split())


def _work_turns_from_end(call: Call) -> int | None:
    """Where a call sits among the turns that did work, counted from the end."""
    return call.turns_from_end if call.work_turns_from_end is None else call.work_turns_from_end


def _named(call: Call) -> str:
    return _line(call.what) or "a call"


def verdict(end: SessionEnd, policy: VerdictPolicy) -> Verdict:
    """How the session ended, with its reason (see the module docstring)."""
    deciding = [c for c in end.calls if c.outcome is not None and not c.bookkeeping]
    last_turn = _in_turn(end.last_turn)
    if end.interrupted:
        stopped = [c for c in deciding if c.outcome == "blocked" and c.turns_from_end == 0]
        if stopped:
            call = stopped[-1]
            return Verdict(
                "abandoned",
                f"abandoned: the user interrupted {last_turn} while {_named(call)} was running",
                [call.span_id],
            )
        spans = [end.last_turn_span] if end.last_turn_span else []
        return Verdict("abandoned", f"abandoned: the user interrupted {last_turn}", spans)
    # A call of unknown outcome after a block is something that came after it.
    ran = [c for c in end.calls if (c.outcome is not None or c.unknown) and not c.bookkeeping]
    if ran and ran[-1].outcome == "blocked":
        call = ran[-1]
        why = f" ({_line(call.why)})" if _line(call.why) else ""
        return Verdict(
            "abandoned",
            f"abandoned: {_named(call)} was blocked in {_in_turn(call.turn)}{why},"
            " nothing came after it",
            [call.span_id],
        )
    if end.end == "pending":
        waiting = [c for c in end.calls if c.pending]
        if waiting:
            return Verdict(
                "unfinished",
                f"unfinished: the file ends while {_named(waiting[-1])} is still waiting for its"
                f" result in {last_turn}",
                [c.span_id for c in waiting[-MAX_SPANS:]],
            )
    if end.end in ("pending", "silent") and end.last_turn is not None:
        spans = [end.last_turn_span] if end.last_turn_span else []
        because = " (the model's API returned an error)" if end.api_error else ""
        return Verdict("unfinished", f"unfinished: {last_turn} has no final answer{because}", spans)
    if not deciding:
        return Verdict(None)
    setbacks = [c for c in deciding if c.outcome == "failure" and not c.harmless]
    unresolved = [
        c
        for c in setbacks
        if (tail := _work_turns_from_end(c)) is not None
        and tail < policy.tail_turns
        and not c.resolved
    ]
    if len(unresolved) >= policy.unresolved_min:
        first = unresolved[-1]
        if policy.tail_turns > 1:
            where = f"the last {policy.tail_turns} turns that did work"
        elif first.turns_from_end in (0, None):
            where = "the last turn"
        else:  # turns that only looked or said thanks came after it
            where = f"{_in_turn(first.turn)} (the last turn that did work)"
        more = f" and {len(unresolved) - 1} more" if len(unresolved) > 1 else ""
        them = "them" if more else "it"
        after = f"nothing of the same kind passed after {them}"
        if first.narrower and not more:
            after = f"only a narrower {_line(first.narrower)} passed after it"
        return Verdict(
            "failure",
            f"failure: {_named(first)}{more} failed in {where}, {after}",
            [c.span_id for c in unresolved[-MAX_SPANS:]],
        )
    if len(setbacks) / len(deciding) > policy.failure_share:
        return Verdict(
            "failure",
            f"failure: {len(setbacks)} of {len(deciding)} calls failed",
            [c.span_id for c in setbacks[-MAX_SPANS:]],
        )
    return Verdict("success")
