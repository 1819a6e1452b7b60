"""``skillopsctl skill evidence``: what went wrong with a skill, compact enough to hand to the
agent that edits it."""

from __future__ import annotations

import apsw
import click

from ..events import LogError
from ..projections.skill_evidence import SessionEvidence, skill_evidence
from ._app import AppContext, NotFound, UsageFailure, db_option, json_option, pass_app, team_option
from ._output import cut, echo, emit_json
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
    errors, labels with notes, failed eval cases with details."""
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


def _print(e: SessionEvidence, *, withheld: bool = False) -> None:
    when = (e.started_at or "")[:16].replace("T", " ")
    echo(f"session {e.session_id} ({e.agent}, {e.version or 'v?'}, {when} UTC)")
    if withheld:
        # A team view of a machine that synced --content derived: no prompt, output or error
        # text reached the server; say so rather than show empty prompts and bare outcomes.
        echo("  text     not on the team server (its machine synced --content derived)")
    echo(f"  prompt   {cut(' '.join(e.first_prompt.split()), 160) or '-'}")
    reason = f": {e.verdict_reason}" if e.verdict_reason else ""
    echo(f"  verdict  {e.verdict or 'unknown'}{reason}")
    for call in e.failing_calls:
        lines = call.error.splitlines() or ["-"]
        kind = "deciding" if call.deciding else "failed  "
        echo(f"  {kind} {call.name}: {cut(lines[0], 160)}")
        for line in lines[1:]:
            echo(f"           {cut(line, 160)}")
    for label in e.labels:
        note = f": {label.note}" if label.note else ""
        echo(f"  label    {label.label} by {label.author}{note}")
    for case in e.failed_cases:
        echo(f"  eval     {case.suite}/{case.case} failed (run {case.run_id[:12]})")
        for detail in case.details:
            echo(f"           {cut(detail, 160)}")
