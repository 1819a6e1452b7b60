"""``skillopsctl eval run``: grade captured sessions of a skill against its evals.yaml."""

from __future__ import annotations

import getpass
import uuid
from pathlib import Path

import apsw
import click
import msgspec

from ..derive import DERIVER_VERSION
from ..evals.discovery import NoSuite, suite_path
from ..evals.evidence import Evidence, build_evidence
from ..evals.manifest import Manifest, ManifestError, load_manifest
from ..evals.run import Flip, details, flips, grade_version, run_passed, suite_registration
from ..events import EventLog, LogError, NewEvent
from ..events.types import EvalCaseResult, EvalRunCompleted
from ..projections.annotations import newest_labels
from ..projections.replay_runs import replay_cases
from ..projections.session_views import find_session, spans_of
from ..projections.skill_folders import shared_line, skill_folders
from ..projections.skill_views import (
    RunRow,
    SkillSession,
    champion,
    eval_runs,
    resolve_version,
    skill_sessions,
    versions,
)
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app, team_option
from ._output import echo, emit_json, plural, say, table
from ._time import SINCE


class ManifestUsage(click.ClickException):
    """A missing or malformed evals.yaml: exit 2."""

    exit_code = 2


def manifest_for(
    conn: apsw.Connection, skill: str, skill_dir: Path | None, *, gate: bool = False
) -> Manifest:
    """The skill's evals.yaml as it is now: its suite of record (``gate``: only that one)."""
    try:
        path = suite_path(conn, skill, skill_dir, gate=gate)
    except NoSuite as exc:
        raise ManifestUsage(str(exc)) from exc
    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise ManifestUsage(str(exc)) from exc


class CaseJson(msgspec.Struct):
    suite: str
    case: str
    passed: bool
    graded: int
    passed_sessions: int
    details: list[str]
    not_graded: int = 0
    min_pass_rate: float = 1.0
    not_graded_reasons: list[str] = []


class VersionJson(msgspec.Struct):
    content_hash: str
    tag: str
    run_id: str
    passed: bool
    sessions: list[str]
    cases: list[CaseJson]
    baseline: str | None = None
    flips: list[Flip] = []
    bad_labels: list[str] = []
    # Some case graded a session: else the version is "not graded" (its run did not pass,
    # but nothing failed either: no case could judge a session).
    graded: bool = True


def _evidence(
    conn: apsw.Connection, skill: str, group: list[SkillSession], team: bool
) -> list[Evidence]:
    labels = newest_labels(conn, [s.session_id for s in group], skill=skill)
    replayed = replay_cases(conn, skill, [s.session_id for s in group])
    withheld: set[str] = set()
    if team:
        from ..team.views import text_withheld

        withheld = text_withheld(conn, [s.session_id for s in group])
    out = []
    for s in group:
        session = find_session(conn, s.session_id)
        if session is not None:
            out.append(
                build_evidence(
                    session,
                    spans_of(conn, s.session_id),
                    labels.get(s.session_id),
                    replayed.get(s.session_id),
                    text_withheld=s.session_id in withheld,
                )
            )
    return out


def _baseline(
    conn: apsw.Connection, skill: str, ref: str | None, suite_hash: str
) -> tuple[str | None, RunRow | None]:
    """The baseline version's tag and its newest run (same suite file preferred)."""
    if ref is not None:
        version = resolve_version(conn, skill, ref)
        if version is None:
            raise UsageFailure(f"unknown version {ref!r} of skill {skill!r}")
        digest, tag = version.version_hash, version.name
    else:
        held = champion(conn, skill)
        if held is None:
            return None, None
        digest = held
        tag = next((v.name for v in versions(conn, skill) if v.version_hash == digest), "v?")
    runs = eval_runs(conn, skill, digest)
    same = [r for r in runs if r.suite_hash == suite_hash]
    best = same or runs
    return tag, best[0] if best else None


@cli.group("eval")
def eval_group() -> None:
    """Evals over captured sessions."""


@eval_group.command("run")
@db_option
@team_option
@click.argument("skill")
@click.option(
    "--skill-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where evals.yaml is, when the recorded skill directory has none.",
)
@click.option("--suite", "suites", multiple=True, help="Only this suite (repeatable).")
@click.option("--session", "session_ids", multiple=True, help="Only this session (repeatable).")
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the N newest.")
@click.option("--since", type=SINCE, default=None, help="Only sessions started since.")
@click.option("--baseline", default=None, metavar="vN|HASH", help="Default: the champion.")
@click.option(
    "--no-record",
    is_flag=True,
    help="Grade and print, but record nothing in the log (always so with --team).",
)
@json_option
@pass_app
def run(
    app: AppContext,
    skill: str,
    skill_dir: Path | None,
    suites: tuple[str, ...],
    session_ids: tuple[str, ...],
    last: int | None,
    since: str | None,
    baseline: str | None,
    no_record: bool,
    as_json: bool,
) -> None:
    """Grade the sessions that loaded SKILL, per version they loaded; exit 1 if a case failed,
    3 if no case could grade any session (nothing failed, nothing passed).

    Only a run over every session and every suite of the skill's suite of record gives its
    sessions' outcomes and can clear the gate; a subset run is recorded, marked as such.
    With --team it grades every machine's sessions and records nothing, here or on the
    server (each machine pushes only its own log); a grader that needs message text the
    server does not hold (--content derived) says so instead of judging.
    """
    if sum(bool(x) for x in (session_ids, last, since)) > 1:
        raise UsageFailure("give at most one of --session, --last, --since")
    scope = (
        " ".join(f"--session {s}" for s in session_ids)
        if session_ids
        else f"--last {last}"
        if last
        else f"--since {since}"
        if since
        else ""
    )
    db = app.db()
    app.caught_up()
    no_record = no_record or app.team
    try:
        with db.read() as conn:
            # A copy of another session (the same responses) is that conversation again:
            # graded once, as the session it is a copy of.
            every = skill_sessions(conn, skill, since=since, copies=True)
            selected = [s for s in every if s.copy_of is None]
            if session_ids:
                wanted = set()
                copied = {s.session_id: s.copy_of for s in every if s.copy_of is not None}
                for ident in session_ids:
                    found = find_session(conn, ident)
                    if found is None:
                        raise UsageFailure(f"unknown session {ident!r} (see skillopsctl sessions)")
                    if found.session_id in copied:
                        raise UsageFailure(
                            f"session {ident!r} is a copy of {copied[found.session_id]} (the"
                            " same responses: resumed, forked or copied); grade that one"
                        )
                    wanted.add(found.session_id)
                selected = [s for s in selected if s.session_id in wanted]
                if len(selected) != len(wanted):
                    raise UsageFailure(f"not every --session loaded skill {skill!r}")
            if last:
                selected = selected[:last]
            if not selected:
                raise UsageFailure(
                    f"no captured session loaded skill {skill!r} (see skillopsctl skills)"
                )
            manifest = manifest_for(conn, skill, skill_dir)
            folders = skill_folders(conn, skill)
            if folders.shared:
                # One suite grades every body loaded under the name; each version's result is
                # its own, but they are different projects' skills, not versions of one.
                echo(
                    f"note: {shared_line(skill, folders.scopes)}; each version below is graded"
                    f" on its own by {manifest.path}",
                    err=True,
                )
            chosen = list(suites) or manifest.suite_names
            unknown = [s for s in chosen if s not in manifest.suite_names]
            if unknown:
                raise ManifestUsage(
                    f"{manifest.path}: no suite {unknown[0]!r}"
                    f" (suites: {', '.join(manifest.suite_names)})"
                )
            tags = {v.version_hash: v.name for v in versions(conn, skill)}
            groups: dict[str, list[SkillSession]] = {}
            skipped = 0
            for s in selected:
                if s.version_hash is None:
                    skipped += 1
                else:
                    groups.setdefault(s.version_hash, []).append(s)
            base_tag, base_run = _baseline(conn, skill, baseline, manifest.suite_hash)
            graded: list[tuple[str, list[SkillSession], list[EvalCaseResult], list[Evidence]]] = []
            for digest in sorted(groups, key=lambda h: (tag_order(tags.get(h)), h)):
                evidences = _evidence(conn, skill, groups[digest], app.team)
                graded.append(
                    (digest, groups[digest], grade_version(manifest, chosen, evidences), evidences)
                )
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"cannot read the log: {exc}") from exc
    if not graded:
        raise UsageFailure(
            f"none of the {skipped} selected session(s) recorded which body of {skill!r} it loaded"
        )
    who = getpass.getuser()
    events = [suite_registration(skill, manifest)]
    out: list[VersionJson] = []
    for digest, group, cases, evidences in graded:
        run_id = uuid.uuid4().hex
        passed = run_passed(cases)
        event = EvalRunCompleted(
            run_id=run_id,
            skill=skill,
            version_hash=digest,
            suite_hash=manifest.suite_hash,
            deriver_version=DERIVER_VERSION,
            sessions=[s.session_id for s in group],
            passed=passed,
            cases=cases,
            suites=chosen,
            all_suites=manifest.suite_names,
            suite_path=manifest.path,
            author=who,
            baseline_run_id=base_run.run_id if base_run else None,
            scope=scope,
        )
        events.append(NewEvent(f"eval:{run_id}", event, run_id))
        out.append(
            VersionJson(
                content_hash=digest,
                tag=tags.get(digest, "v?"),
                run_id=run_id,
                passed=passed,
                sessions=event.sessions,
                cases=[
                    CaseJson(
                        c.suite,
                        c.case,
                        c.passed,
                        c.graded,
                        c.passed_sessions,
                        details(c),
                        c.not_graded,
                        c.min_pass_rate,
                        c.not_graded_reasons,
                    )
                    for c in cases
                ],
                baseline=base_tag,
                flips=flips(cases, base_run.cases) if base_run else [],
                bad_labels=[e.session_id for e in evidences if e.label == "bad"],
                graded=any(c.graded for c in cases),
            )
        )
    try:
        if not no_record:
            EventLog(db).append(events)
            app.caught_up()
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"cannot record the eval run: {exc}") from exc
    all_passed = all(v.passed for v in out)
    # A version that graded nothing did not pass, but no case failed: only a graded case
    # that failed is the regression status 1.
    failed = any(v.graded and not v.passed for v in out)
    nothing = not any(v.graded for v in out)
    if as_json:
        emit_json(
            {
                "skill": skill,
                "passed": all_passed,
                "suite_hash": manifest.suite_hash,
                "suite_path": manifest.path,
                "recorded": not no_record,
                "graded": not nothing,
                "scope": scope or None,
                "versions": out,
            }
        )
    else:
        _print(skill, manifest, out, skipped, recorded=not no_record)
        if app.team:
            echo("(--team: graded on the team replica; nothing recorded)")
        elif no_record:
            echo("(--no-record: nothing recorded)")
        elif scope or chosen != manifest.suite_names:
            echo(
                "(a subset run: recorded, but only a run over every session and suite gives"
                " outcomes and can clear the gate)"
            )
    if failed:
        click.get_current_context().exit(1)
    if nothing:
        echo(f"skillopsctl: eval run: {_nothing_graded(out)}", err=True)
        click.get_current_context().exit(3)


def _nothing_graded(out: list[VersionJson]) -> str:
    """Why no case graded a session, for the one line a run that judged nothing ends with."""
    sessions = {sid for v in out for sid in v.sessions}
    reasons = {r for v in out for c in v.cases for r in c.not_graded_reasons}
    from ..team.views import WITHHELD

    if WITHHELD in reasons:
        return (
            f"nothing could be graded: the team server holds no message text of"
            f" {plural(len(sessions), 'session')} (their machines sync --content derived),"
            " which these graders read; no case failed"
        )
    why = f" ({', '.join(sorted(reasons))})" if reasons else ""
    return (
        f"nothing could be graded: no case judged any of {plural(len(sessions), 'session')}"
        f"{why}; no case failed"
    )


def tag_order(tag: str | None) -> tuple[int, str]:
    """``v2`` before ``v10``; an unknown tag last."""
    if tag and tag[0] == "v" and tag[1:].isdigit():
        return int(tag[1:]), ""
    return 1 << 62, tag or ""


def _rate(c: CaseJson) -> str:
    rate = f"{100 * c.passed_sessions / c.graded:.0f}%" if c.graded else "-"
    return rate if c.min_pass_rate >= 1 else f"{rate} (min {100 * c.min_pass_rate:g}%)"


def _detail(c: CaseJson) -> str:
    """The first failure in full, and how many more there are (``--json`` has them all)."""
    why = ", ".join(c.not_graded_reasons) or "evidence missing"
    skipped = f"{c.not_graded} not graded ({why})" if c.not_graded else ""
    if not c.graded:
        return skipped or "no session matched"
    if not c.details:
        return "; ".join(x for x in ("ok", skipped) if x)
    more = f" (+{len(c.details) - 1} more)" if len(c.details) > 1 else ""
    return "; ".join(x for x in (f"{c.details[0][:200]}{more}", skipped) if x)


def _verdict(c: CaseJson) -> str:
    if not c.graded:
        return "not graded"
    return "passed" if c.passed else "FAILED"


def _print(
    skill: str, manifest: Manifest, out: list[VersionJson], skipped: int, *, recorded: bool
) -> None:
    say(f"suite file {manifest.path} ({manifest.suite_hash[:12]})")
    for v in out:
        echo()
        verdict = "not graded" if not v.graded else "passed" if v.passed else "FAILED"
        run = f"   run {v.run_id[:12]}" if recorded else ""
        say(
            f"{skill} {v.tag} ({v.content_hash[:12]}): {plural(len(v.sessions), 'session')},"
            f" {verdict}{run}"
        )
        table(
            [
                [
                    c.suite,
                    c.case,
                    _verdict(c),
                    f"{c.passed_sessions}/{c.graded}",
                    _rate(c),
                    _detail(c),
                ]
                for c in v.cases
            ],
            ["SUITE", "CASE", "RESULT", "PASSED/GRADED", "RATE", "DETAIL"],
            flex=5,
            text=(0, 1, 5),
            min_flex=30,
        )
        for flip in v.flips:
            kind = "regression" if flip.direction == "pass→fail" else "fix"
            say(
                f"  {flip.direction} vs {v.baseline}: {flip.suite}/{flip.case}"
                f" {flip.before} → {flip.after} ({kind})",
                indent=4,
            )
        for sid in v.bad_labels:
            echo(f"  note: graded session {sid} is labelled bad")
    if skipped:
        say(f"({plural(skipped, 'session')} did not record which body they loaded: not graded)")
