"""``skillopsctl skill evidence``: what went wrong with a skill, compact enough to hand to the
agent that edits it."""

from __future__ import annotations

import textwrap

import apsw
import click

from .._terminal import safe
from ..events import LogError
from ..projections.skill_evidence import SessionEvidence, skill_evidence
from ._app import AppContext, NotFound, UsageFailure, db_option, json_option, pass_app, team_option
from ._output import cells, cut, echo, emit_json, terminal_width
from .skills import skill_group


@skill_group.command("evidence")
@db_option
@team_option
@click.argument("name")
@click.option("--failures", is_flag=True, help="Only sessions that failed, were labelled bad"
              " or blocked, or failed an eval case.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="At most N sessions, newest first.")  # fmt: skip
@json_option
@pass_app
def evidence(app: AppContext, name: str, failures: bool, limit: int, as_json: bool) -> None:
    """Per session of skill NAME: first prompt, verdict and why, failing calls with their
    errors, labels with notes, failed eval cases with details.

    Fits the terminal's width ($COLUMNS): prose wraps under its label, each line of a call's
    output is cut to one line (tabs expanded); --json keeps every character."""
    db = app.db()
    app.caught_up()
    withheld: set[str] = set()
    try:
        with db.read() as conn:
            found = skill_evidence(conn, name, failures=failures, limit=limit)
            known = conn.execute(
                "SELECT 1 FROM p_session_skills WHERE skill = ? LIMIT 1", (name,)
            ).fetchone()
            if app.team:
                from ..team.views import text_withheld

                withheld = text_withheld(conn, [e.session_id for e in found])
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"cannot read the log: {exc}") from exc
    if known is None:
        raise NotFound(f"no session loaded skill {name!r} (see skillopsctl skills)")
    if as_json:
        emit_json(found)
        return
    if not found:
        what = "failing session" if failures else "session"
        echo(f"no {what} of {name} to show")
        return
    for n, e in enumerate(found):
        if n:
            echo()
        _print(e, withheld=e.session_id in withheld)


# What a field's text keeps: each line at most this many columns (as before the width was
# the terminal's), then wrapped (prose) or cut (the lines of a call's output) to fit.
_LINE = 160
_LABEL = 11  # "  prompt   ": the column the fields' text starts at


def _text(line: str) -> str:
    """One line as shown: made safe, tabs expanded (a raw TAB jumps to the terminal's own
    stops, past the width), at most :data:`_LINE` columns."""
    return cut(safe(line).expandtabs(4), _LINE)


def _wrap(text: str, room: int) -> list[str]:
    """``text`` in lines of at most ``room`` columns: at spaces where it can, and a line of
    wide (CJK) characters, which textwrap counts as one column each, split where it fills."""
    out: list[str] = []
    for line in textwrap.wrap(text, room, break_long_words=True, break_on_hyphens=False):
        while cells(line) > room:
            used, n = 0, 0
            while n < len(line) and used + cells(line[n]) <= room:
                used += cells(line[n])
                n += 1
            out.append(line[: max(n, 1)])
            line = line[max(n, 1) :]
        out.append(line)
    return out


def _field(label: str, text: str, total: int, *, wrap: bool = True) -> None:
    """``label`` then ``text`` in the columns left of ``total``: wrapped (continuation lines
    under the text), or, with ``wrap`` false, cut to one line."""
    head = f"  {label:<{_LABEL - 3}} "
    room = max(total - _LABEL, 20)
    lines = (_wrap(_text(text), room) if wrap else [_text(text)]) or ["-"]
    for n, line in enumerate(lines):
        echo((head if n == 0 else " " * _LABEL) + cut(line, room))


def _print(e: SessionEvidence, *, withheld: bool = False) -> None:
    total = terminal_width()
    when = (e.started_at or "")[:16].replace("T", " ")
    echo(cut(f"session {e.session_id} ({e.agent}, {e.version or 'v?'}, {when} UTC)", total))
    if withheld:
        # A team view of a machine that synced --content derived: no prompt, output or error
        # text reached the server; say so rather than show empty prompts and bare outcomes.
        _field("text", "not on the team server (its machine synced --content derived)", total)
    _field("prompt", " ".join(e.first_prompt.split()) or "-", total)
    reason = e.verdict_reason or ""
    if e.verdict and reason.startswith(f"{e.verdict}: "):
        reason = reason[len(e.verdict) + 2 :]  # the reason may name the verdict itself
    reason = f": {reason}" if reason else ""
    _field("verdict", f"{e.verdict or 'unknown'}{reason}", total)
    for call in e.failing_calls:
        lines = call.error.splitlines() or ["-"]
        _field("deciding" if call.deciding else "failed", f"{call.name}: {lines[0]}", total)
        for line in lines[1:]:
            # The output's own lines (code, a stack): one line each, cut, as they were.
            _field("", line, total, wrap=False)
    for label in e.labels:
        note = f": {label.note}" if label.note else ""
        _field("label", f"{label.label} by {label.author}{note}", total)
    for case in e.failed_cases:
        _field("eval", f"{case.suite}/{case.case} failed (run {case.run_id[:12]})", total)
        for detail in case.details:
            _field("", detail, total)
