"""``skillopsctl promote``: make a version the champion through the gate (or a recorded force)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import apsw
import click

from ..events import EventLog, LogError, NewEvent
from ..events.types import GateEvaluated, SkillPromoted
from ..projections.skill_views import champion, resolve_version
from ..versions.gating import Gated, evaluate, gate_manifest
from ..versions.store import StoreError, read_state
from ..versions.sync import sync_skill
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
from ._output import emit_json
from .evals import ManifestUsage


class Refused(click.ClickException):
    """The gate did not clear: exit 1."""

    exit_code = 1


@cli.command("promote")
@db_option
@click.argument("skill")
@click.option("--to", "ref", required=True, metavar="vN|HASH", help="The version to promote.")
@click.option(
    "--skill-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where evals.yaml is, before the skill has a suite of record (its first full run).",
)
@click.option("--force-no-eval", is_flag=True, help="Promote without the gate (needs --reason).")
@click.option("--reason", default=None, help="Why (required with --force-no-eval).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what the gate would decide; record nothing (exit 1: refused).",
)
@json_option
@pass_app
def promote(
    app: AppContext,
    skill: str,
    ref: str,
    skill_dir: Path | None,
    force_no_eval: bool,
    reason: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Promote SKILL --to a version if its newest eval run clears the gate."""
    if force_no_eval and not (reason and reason.strip()):
        raise UsageFailure("--force-no-eval needs --reason (it is recorded forever)")
    db = app.db()
    who = getpass.getuser()
    try:
        app.caught_up()
        with db.read() as conn:
            version = resolve_version(conn, skill, ref)
            if version is None:
                raise UsageFailure(
                    f"unknown version {ref!r} of skill {skill!r} (see skillopsctl lineage {skill})"
                )
            previous = champion(conn, skill)
        stream = f"skill:{skill}"
        promoted: SkillPromoted | None
        if force_no_eval:
            gate = GateEvaluated(
                skill=skill,
                version_hash=version.version_hash,
                cleared=False,
                forced=True,
                reason=f"forced without eval: {reason}",
                author=who,
            )
            promoted = SkillPromoted(
                skill=skill,
                version_hash=version.version_hash,
                previous_hash=previous,
                reason=reason or "",
                forced=True,
                author=who,
            )
        else:
            try:
                manifest = gate_manifest(db, skill, skill_dir)
            except Gated as exc:
                raise ManifestUsage(str(exc)) from exc
            decision, gate = evaluate(db, skill, version.version_hash, version.name, manifest, who)
            run = decision.run
            promoted = (
                SkillPromoted(
                    skill=skill,
                    version_hash=version.version_hash,
                    previous_hash=previous,
                    reason=decision.reason,
                    gate_run_id=run.run_id if run else None,
                    author=who,
                )
                if decision.cleared
                else None
            )
        events = [NewEvent(stream, gate)]
        if promoted is not None:
            events.append(NewEvent(stream, promoted))
        if not dry_run:
            EventLog(db).append(events)
            app.caught_up()
            if promoted is not None and read_state(db, skill).managed:
                # The new champion goes to the live files now, not at the daemon's next pass.
                report = sync_skill(db, skill, now=datetime.now(UTC), executions=False)
                for note in report.masked_notes():
                    click.echo(note, err=True)
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"store error, nothing decided: {exc}") from exc
    except StoreError as exc:
        raise UsageFailure(str(exc)) from exc
    if as_json:
        emit_json(
            {
                "skill": skill,
                "tag": version.name,
                "content_hash": version.version_hash,
                "promoted": promoted is not None and not dry_run,
                "would_promote": promoted is not None,
                "dry_run": dry_run,
                "forced": force_no_eval,
                "gate": gate,
            }
        )
    if promoted is None:
        if as_json:
            click.get_current_context().exit(1)
        raise Refused(f"{'dry run: would refuse' if dry_run else 'promote refused'}: {gate.reason}")
    if dry_run:
        if not as_json:
            click.echo(f"dry run: would promote {skill} {version.name}: {gate.reason}")
        return
    if not as_json:
        how = "FORCED" if force_no_eval else "gate cleared"
        click.echo(
            f"promoted {skill} {version.name} ({version.version_hash[:12]}): {how}: {gate.reason}"
        )
