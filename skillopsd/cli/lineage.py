"""``skillopsctl lineage``: one newest-first timeline of a skill's versions and verdicts."""

from __future__ import annotations

import click

from ..projections.skill_views import LineageEntry, lineage
from ._app import AppContext, NotFound, cli, db_option, json_option, pass_app, team_option
from ._output import echo, emit_json_array, plural, table
from ._time import SINCE, stamps, utc_option


def _detail(e: LineageEntry) -> str:
    if e.kind == "version":
        parent = f" parent {e.parent_hash[:12]}" if e.parent_hash else ""
        first = f" first in {e.session_id}" if e.session_id else ""
        return f"{e.source}{parent}{first}"
    if e.kind == "eval_run":
        verdict = "passed" if e.passed else "FAILED"
        subset = f" (subset {e.scope}: never clears the gate)" if e.scope else ""
        suite = (e.suite_hash or "")[:12]
        return f"{verdict} over {plural(e.graded or 0, 'session')}, suite {suite}{subset}"
    if e.kind == "annotation":
        retracted = " (retracted)" if e.retracted else ""
        note = f": {e.note}" if e.note else ""
        return f"{e.label}{retracted} on {e.session_id} by {e.author}{note}"
    if e.kind == "gate":
        verdict = "FORCED" if e.forced else ("cleared" if e.cleared else "refused")
        return f"{verdict}: {e.reason}"
    if e.kind == "promotion":
        forced = " FORCED" if e.forced else ""
        return f"promoted{forced} by {e.author}: {e.reason}"
    if e.kind == "retirement":
        return f"{e.decision or 'retired'}: {e.reason}"
    if e.kind == "rollback":
        return f"champion again (was {(e.parent_hash or '')[:12]}) by {e.author}: {e.reason}"
    if e.kind == "challenger":
        return f"tested against {(e.parent_hash or '')[:12]}: {e.reason}"
    if e.kind == "replay":
        verdict = "" if e.passed is None else (" passed" if e.passed else " FAILED")
        run = f", eval run {e.run_id[:12]}{verdict}" if e.run_id else ""
        return f"{e.reason}{run}"
    if e.kind == "managed":
        return f"managed, live in {e.reason}"
    if e.kind == "policy":
        return f"{e.reason} (by {e.author or '?'})"
    if e.kind == "unmanaged":
        why = f": {e.reason}" if e.reason else ""
        return f"no longer managed by {e.author or '?'}{why} (live files left as they were)"
    if e.kind == "live_removed":
        return f"no longer written: {e.reason}"
    return ""


@cli.command("lineage")
@db_option
@team_option
@click.argument("skill")
@click.option("--since", type=SINCE, default=None, help="Only entries recorded since.")
@utc_option
@json_option
@pass_app
def lineage_command(
    app: AppContext, skill: str, since: str | None, utc: bool, as_json: bool
) -> None:
    """SKILL's versions, eval runs, annotations, gate decisions and promotions, newest first."""
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        entries = lineage(conn, skill, since=since)
        known = conn.execute(
            "SELECT 1 FROM p_session_skills WHERE skill = ? LIMIT 1", (skill,)
        ).fetchone()
    if not entries and known is None:
        raise NotFound(f"no history for skill {skill!r} (see skillopsctl skills)")
    if as_json:
        emit_json_array(entries)
        return
    if not entries:
        echo(f"nothing recorded for skill {skill} in that window (lineage {skill} shows all)")
        return
    at, zone = stamps([e.at for e in entries], utc, seconds=True)
    table(
        [
            [
                when,
                e.kind,
                e.tag or "-",
                (e.content_hash or "")[:12] or "-",
                _detail(e),
            ]
            for e, when in zip(entries, at, strict=True)
        ],
        [f"recorded ({zone})", "kind", "version", "hash", "detail"],
        flex=4,
    )
