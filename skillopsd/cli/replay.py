"""``skillopsctl eval replay``: run versions of a skill on its ``run`` cases through the agent's
own CLI, capture what the agent wrote, grade it, and compare the versions on the same tasks."""

from __future__ import annotations

import getpass
import signal
import sys
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from types import FrameType

import apsw
import click
import msgspec

from .._redact import redact_text
from ..derive import DERIVER_VERSION
from ..derive._ids import session_id
from ..deriving import SessionDeriver
from ..evals.evidence import build_evidence
from ..evals.graders import grade_case
from ..evals.manifest import Case, Manifest
from ..evals.run import run_passed, suite_registration
from ..events import EventLog, LogError, NewEvent
from ..events.types import (
    EvalCaseResult,
    EvalRunCompleted,
    GraderResult,
    ReplayRunCompleted,
)
from ..projections._stats import Share, wilson
from ..projections.annotations import newest_labels
from ..projections.session_views import find_session, spans_of
from ..replay import AGENTS, PairedResult, Runner, RunOutcome, RunSpec, paired
from ..replay.agents import TemplateError, check_template
from ..sources import STORES, Capturer, capture_all
from ..sources._store import decode_head
from ..versions.state import Version
from ..versions.store import read_state
from ._app import AppContext, UsageFailure, db_option, json_option, pass_app
from ._output import echo, emit_json, table
from .evals import ManifestUsage, eval_group, manifest_for
from .skills import share_text


class RunJson(msgspec.Struct):
    run_id: str
    suite: str
    case: str
    version: str
    repeat: int
    status: str
    passed: bool
    exit_status: int | None
    wall_ms: int
    session_id: str | None
    error: str
    details: list[str]


class CellJson(msgspec.Struct):
    suite: str
    case: str
    version: str
    version_hash: str
    passed: int
    runs: int
    low: float | None
    high: float | None


class ReplayJson(msgspec.Struct):
    replay_id: str
    skill: str
    agent: str
    command: str
    suite_hash: str
    suite_path: str
    versions: dict[str, str]
    interrupted: bool
    runs: list[RunJson]
    cells: list[CellJson]
    comparisons: list[PairedResult]
    eval_runs: dict[str, str]
    regressions: list[str]


def _versions(app: AppContext, skill: str, wanted: str | None) -> list[tuple[str, str, str]]:
    """(tag, hash, SKILL.md text) of each version to replay, baseline first."""
    state = read_state(app.db(), skill)
    if not state.versions:
        raise UsageFailure(f"no version of skill {skill!r} is recorded (see skillopsctl skills)")
    if wanted:
        chosen: list[Version] = []
        for ref in [r.strip() for r in wanted.split(",") if r.strip()]:
            v = state.resolve(ref)
            if v is None:
                known = ", ".join(f"v{x.tag}" for x in state.by_tag())
                raise UsageFailure(f"unknown version {ref!r} of skill {skill!r} (known: {known})")
            if v.content_hash not in [c.content_hash for c in chosen]:
                chosen.append(v)
    elif state.champion is not None:
        chosen = [state.versions[state.champion]]
        if state.challenger is not None:
            chosen.append(state.versions[state.challenger])
    else:
        chosen = state.by_tag()[-2:]
    if not chosen:
        raise UsageFailure("--versions names no version")
    out = []
    for v in chosen:
        if not v.body.strip() and not v.file_text.strip():
            raise UsageFailure(
                f"v{v.tag} of {skill!r} has no recorded body to give the agent (its session"
                " showed only part of it); skill import or add-challenger the file"
            )
        out.append((f"v{v.tag}", v.content_hash, state.body_file(v.content_hash)))
    return out


def _run_cases(manifest: Manifest) -> list[tuple[str, Case]]:
    return [(s.name, c) for s in manifest.suites for c in s.cases if c.run is not None]


def _check_fixtures(manifest: Manifest, cases: list[tuple[str, Case]]) -> None:
    root = Path(manifest.path).parent
    for suite, case in cases:
        assert case.run is not None
        if case.run.fixture is None:
            continue
        path = root / case.run.fixture
        if not path.is_dir():
            raise ManifestUsage(
                f"{manifest.path}, suite {suite!r}, case {case.name!r}, field 'run.fixture':"
                f" no folder {path}"
            )


def _session_of(outcome: RunOutcome) -> str | None:
    store = STORES[outcome.spec.agent]
    for name in outcome.transcripts:
        path = Path(name)
        try:
            with open(path, "rb") as fh:
                head = decode_head(fh.read(1 << 20))
        except OSError:
            continue
        ref = store.session_of(path, head)
        if not ref.parent_session:
            return session_id(outcome.spec.agent, ref.session)
    return None


def _capture(app: AppContext, outcome: RunOutcome) -> str | None:
    """Capture the run's transcripts as ``ingest`` would, derive them, return the session."""
    if not outcome.transcripts:
        return None
    db = app.db(create=True)
    store = STORES[outcome.spec.agent]
    with db.read():
        mark = EventLog(db).head()
    capture_all(Capturer(db), [(Path(p), store) for p in outcome.transcripts])
    app.caught_up()
    deriver = SessionDeriver(db)
    deriver.derive(deriver.touched_since(mark))
    app.caught_up()
    return _session_of(outcome)


def _progress(n: int, total: int, o: RunOutcome) -> None:
    s = o.spec
    where = f"{s.suite}/{s.case} {s.tag} #{s.repeat}"
    extra = f": {o.error.splitlines()[0][:120]}" if o.error and o.status != "completed" else ""
    echo(f"[{n}/{total}] {where}: {o.status} in {o.wall_ms / 1000:.1f} s{extra}", err=True)


@eval_group.command("replay")
@db_option
@click.argument("skill")
@click.option(
    "--versions",
    default=None,
    metavar="vA,vB",
    help="The first is the baseline. Default: the champion and its challenger (a skill not"
    " managed: its two newest versions).",
)
@click.option(
    "--repeat", type=click.IntRange(1, 1000), default=1, help="Runs per case and version."
)
@click.option("--agent", type=click.Choice(sorted(AGENTS)), default="claude", show_default=True)
@click.option(
    "--agent-command",
    default=None,
    metavar="TEMPLATE",
    help="Replaces the agent's default command; {prompt} and {workdir} are filled in per"
    " run, split as a shell would but run without one, cwd = the scratch folder.",
)
@click.option("--jobs", type=click.IntRange(1, 64), default=1, help="Runs at the same time.")
@click.option(
    "--skill-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where evals.yaml is, when the recorded skill directory has none.",
)
@click.option("--keep-workdirs", is_flag=True, help="Keep the scratch folders (printed).")
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the table and the paired sentence as Markdown to FILE (a pull request"
    " body, a CI job summary).",
)
@json_option
@pass_app
def replay(
    app: AppContext,
    skill: str,
    versions: str | None,
    repeat: int,
    agent: str,
    agent_command: str | None,
    jobs: int,
    skill_dir: Path | None,
    keep_workdirs: bool,
    markdown_file: Path | None,
    as_json: bool,
) -> None:
    """Run versions of SKILL on every case with `run:` through the agent's own CLI; grade the
    sessions it wrote and compare the versions on the same tasks.

    Exit 0: no regression; 1: a case the first version passed in every run, a later version
    failed in every run (or, with one version, a case failed), or no run completed at all;
    2: usage; 130: interrupted.
    """
    template = AGENTS[agent].command if agent_command is None else agent_command
    try:
        check_template(template)
    except TemplateError as exc:
        raise UsageFailure(str(exc)) from None
    db = app.db()
    app.caught_up()
    try:
        chosen = _versions(app, skill, versions)
        with db.read() as conn:
            manifest = manifest_for(conn, skill, skill_dir)
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"cannot read the log: {exc}") from exc
    cases = _run_cases(manifest)
    if not cases:
        raise ManifestUsage(
            f"{manifest.path}: no case has a run: (add run: {{prompt: ...}} to a case to replay it)"
        )
    _check_fixtures(manifest, cases)
    specs = [
        RunSpec(
            suite=suite,
            case=case.name,
            version_hash=digest,
            tag=tag,
            repeat=n,
            skill=skill,
            skill_text=text,
            prompt=case.run.prompt,
            fixture=case.run.fixture,
            setup=case.run.setup,
            timeout=case.run.timeout,
            agent=agent,
            template=template,
        )
        for suite, case in cases
        if case.run is not None
        for n in range(1, repeat + 1)
        for tag, digest, text in chosen
    ]
    replay_id = uuid.uuid4().hex
    who = getpass.getuser()
    runner = Runner(Path(manifest.path).parent, keep=keep_workdirs)
    recorded: list[tuple[RunOutcome, str, str | None]] = []  # outcome, run id, session

    def record(outcome: RunOutcome) -> None:
        try:
            session = _capture(app, outcome)
        except (LogError, apsw.Error, OSError) as exc:
            session = None
            outcome.error = (outcome.error + f"; capture failed: {exc}").lstrip("; ")
        run_id = uuid.uuid4().hex
        s = outcome.spec
        event = ReplayRunCompleted(
            replay_id=replay_id,
            run_id=run_id,
            skill=skill,
            version_hash=s.version_hash,
            suite_hash=manifest.suite_hash,
            suite=s.suite,
            case=s.case,
            repeat=s.repeat,
            agent=s.agent,
            command=[redact_text(w) for w in outcome.argv],
            status=outcome.status,
            exit_status=outcome.exit_status,
            wall_ms=outcome.wall_ms,
            session_id=session,
            transcripts=outcome.transcripts,
            error=redact_text(outcome.error),
            started_at=outcome.started_at,
            author=who,
        )
        try:
            EventLog(db).append([NewEvent(f"replay:{replay_id}", event, run_id)])
        except (LogError, apsw.Error) as exc:
            runner.stop()
            raise UsageFailure(f"cannot record the replay run, stopped: {exc}") from exc
        recorded.append((outcome, run_id, session))
        _progress(len(recorded), len(specs), outcome)
        if keep_workdirs and outcome.workdir:
            echo(f"  kept {outcome.workdir}", err=True)

    # Ctrl-C sets a flag instead of raising mid-capture: the agents are stopped, the runs
    # not yet started end as "interrupted", and every run is recorded before grading. A
    # second Ctrl-C raises as usual.
    stop = threading.Event()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        echo("interrupted: stopping the agents; what finished is kept", err=True)
        runner.stop()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures: list[Future[RunOutcome]] = [pool.submit(runner.run, s) for s in specs]
        pending = set(futures)
        while pending:
            finished, pending = wait_futures(pending, timeout=0.2, return_when="FIRST_COMPLETED")
            for f in sorted(finished, key=futures.index):
                record(f.result())
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.shutdown(wait=True)
    interrupted = stop.is_set()
    app.caught_up()
    result = _grade(app, skill, replay_id, manifest, cases, chosen, recorded, interrupted, who)
    result.agent, result.command = agent, template
    if markdown_file is not None:
        try:
            markdown_file.write_text(markdown(result, chosen), encoding="utf-8")
        except OSError as exc:
            echo(f"cannot write {markdown_file}: {exc.strerror or exc}", err=True)
    if as_json:
        emit_json(result)
    else:
        _print(result, chosen)
    if interrupted:
        sys.exit(130)
    if result.regressions or not any(r.status == "completed" for r in result.runs):
        click.get_current_context().exit(1)


def _grade(
    app: AppContext,
    skill: str,
    replay_id: str,
    manifest: Manifest,
    cases: list[tuple[str, Case]],
    chosen: list[tuple[str, str, str]],
    recorded: list[tuple[RunOutcome, str, str | None]],
    interrupted: bool,
    who: str,
) -> ReplayJson:
    db = app.db()
    runs: list[RunJson] = []
    # (suite, case, version hash) -> [passed per repeat]
    passes: dict[tuple[str, str, str], dict[int, bool]] = {}
    results: dict[tuple[str, str, str], list[GraderResult]] = {}
    # In a replay a case grades exactly the sessions of its own runs.
    by_case = {(suite, c.name): msgspec.structs.replace(c, match=None) for suite, c in cases}
    with db.read() as conn:
        labels = newest_labels(conn, [s for _, _, s in recorded if s], skill=skill)
        for outcome, run_id, session in recorded:
            s = outcome.spec
            key = (s.suite, s.case, s.version_hash)
            details: list[str] = []
            passed = False
            found = find_session(conn, session) if session else None
            if found is not None:
                evidence = build_evidence(
                    found, spans_of(conn, found.session_id), labels.get(found.session_id), s.case
                )
                case = by_case[(s.suite, s.case)]
                verdicts = grade_case(case, evidence) or []
                for grader, v in zip(case.graders, verdicts, strict=True):
                    results.setdefault(key, []).append(
                        GraderResult(
                            session_id=found.session_id,
                            index=grader.index,
                            type=grader.type,
                            name=grader.name,
                            passed=v.passed,
                            detail=v.detail,
                        )
                    )
                    if not v.passed:
                        details.append(
                            f"grader {grader.index} {grader.name or grader.type}: {v.detail}"
                        )
                passed = outcome.status == "completed" and all(v.passed for v in verdicts)
            if outcome.status != "completed":
                details.insert(0, f"run {outcome.status}: {outcome.error}".rstrip(": "))
            passes.setdefault(key, {})[s.repeat] = passed
            runs.append(
                RunJson(
                    run_id=run_id,
                    suite=s.suite,
                    case=s.case,
                    version=s.tag,
                    repeat=s.repeat,
                    status=outcome.status,
                    passed=passed,
                    exit_status=outcome.exit_status,
                    wall_ms=outcome.wall_ms,
                    session_id=session,
                    error=outcome.error,
                    details=details,
                )
            )
    cells = []
    for suite, case in cases:
        for tag, digest, _ in chosen:
            got = passes.get((suite, case.name, digest), {})
            share: Share = wilson(sum(got.values()), len(got))
            cells.append(
                CellJson(suite, case.name, tag, digest, share.k, share.n, share.low, share.high)
            )
    comparisons = []
    regressions = []
    base_tag, base_hash, _ = chosen[0]
    repeated = any(len(p) > 1 for p in passes.values())
    for tag, digest, _ in chosen[1:]:
        pairs = []
        for suite, case in cases:
            a = passes.get((suite, case.name, base_hash), {})
            b = passes.get((suite, case.name, digest), {})
            pairs += [(a[n], b[n]) for n in sorted(set(a) & set(b))]
            if a and b and all(a.values()) and not any(b.values()):
                regressions.append(f"{suite}/{case.name}: {base_tag} passed every run, {tag} none")
        comparisons.append(paired(base_tag, tag, pairs, "run" if repeated else "case"))
    if len(chosen) == 1:
        for suite, case in cases:
            got = passes.get((suite, case.name, base_hash), {})
            if got and not all(got.values()):
                regressions.append(f"{suite}/{case.name}: {base_tag} failed a run")
    eval_ids: dict[str, str] = {}
    if not interrupted:
        eval_ids = _record_eval_runs(
            app, skill, replay_id, manifest, cases, chosen, passes, results, recorded, who
        )
    return ReplayJson(
        replay_id=replay_id,
        skill=skill,
        agent="",
        command="",
        suite_hash=manifest.suite_hash,
        suite_path=manifest.path,
        versions={tag: digest for tag, digest, _ in chosen},
        interrupted=interrupted,
        runs=runs,
        cells=cells,
        comparisons=comparisons,
        eval_runs=eval_ids,
        regressions=regressions,
    )


def _record_eval_runs(
    app: AppContext,
    skill: str,
    replay_id: str,
    manifest: Manifest,
    cases: list[tuple[str, Case]],
    chosen: list[tuple[str, str, str]],
    passes: dict[tuple[str, str, str], dict[int, bool]],
    results: dict[tuple[str, str, str], list[GraderResult]],
    recorded: list[tuple[RunOutcome, str, str | None]],
    who: str,
) -> dict[str, str]:
    """One ``EvalRunCompleted`` per version: a full replay of every ``run`` case is a full
    eval run of that version (the gate reads it like any other)."""
    events = [suite_registration(skill, manifest)]
    out = {}
    for tag, digest, _ in chosen:
        case_results = []
        for suite, case in cases:
            key = (suite, case.name, digest)
            got = passes.get(key, {})
            case_results.append(
                EvalCaseResult(
                    suite=suite,
                    case=case.name,
                    graded=len(got),
                    passed_sessions=sum(got.values()),
                    passed=bool(got) and all(got.values()),
                    results=results.get(key, []),
                )
            )
        run_id = uuid.uuid4().hex
        sessions = sorted({s for o, _, s in recorded if s and o.spec.version_hash == digest})
        event = EvalRunCompleted(
            run_id=run_id,
            skill=skill,
            version_hash=digest,
            suite_hash=manifest.suite_hash,
            deriver_version=DERIVER_VERSION,
            sessions=sessions,
            passed=run_passed(case_results),
            cases=case_results,
            suites=manifest.suite_names,
            all_suites=manifest.suite_names,
            suite_path=manifest.path,
            author=who,
            replay_id=replay_id,
        )
        events.append(NewEvent(f"eval:{run_id}", event, run_id))
        out[tag] = run_id
    try:
        EventLog(app.db()).append(events)
        app.caught_up()
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"cannot record the eval runs: {exc}") from exc
    return out


def _interval(c: CellJson) -> str:
    if not c.runs:
        return "not run"
    return share_text(wilson(c.passed, c.runs))


def _print(r: ReplayJson, chosen: list[tuple[str, str, str]]) -> None:
    tags = [t for t, _, _ in chosen]
    echo(
        f"replay {r.replay_id[:12]} of {r.skill} with {r.agent}: {len(r.runs)} run(s),"
        f" suite file {r.suite_path} ({r.suite_hash[:12]})"
    )
    rows = []
    by = {(c.suite, c.case, c.version): c for c in r.cells}
    for suite, case in dict.fromkeys((c.suite, c.case) for c in r.cells):
        rows.append([suite, case, *[_interval(by[(suite, case, t)]) for t in tags]])
    table(rows, ["SUITE", "CASE", *[f"{t} PASSED/RUNS [95% CI]" for t in tags]])
    failed = [x for x in r.runs if x.status != "completed"]
    if failed:
        echo()
        table(
            [
                [f"{x.suite}/{x.case}", x.version, str(x.repeat), x.status, x.error or "-"]
                for x in failed
            ],
            ["CASE", "VERSION", "RUN", "STATUS", "WHY"],
            flex=4,
        )
    echo()
    for comparison in r.comparisons:
        echo(comparison.sentence)
    for line in r.regressions:
        echo(f"regression: {line}")
    for tag, run_id in r.eval_runs.items():
        echo(f"recorded eval run {run_id[:12]} for {tag} (the gate reads it)")
    if not any(x.status == "completed" for x in r.runs):
        echo("no run completed: nothing was compared (see WHY above)")
    if r.interrupted:
        echo("interrupted: the runs above are recorded; no eval run was recorded")


def _md(text: str) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def markdown(r: ReplayJson, chosen: list[tuple[str, str, str]]) -> str:
    """The replay as Markdown: both versions on the same tasks, then the paired test."""
    tags = [t for t, _, _ in chosen]
    by = {(c.suite, c.case, c.version): c for c in r.cells}
    lines = [
        f"**skillops replay** of `{_md(r.skill)}` with {r.agent}: {len(r.runs)} run(s),"
        f" same tasks for every version (suite file `{r.suite_hash[:12]}`)",
        "",
        "| suite | case | " + " | ".join(f"{t} passed/runs [95% CI]" for t in tags) + " |",
        "|---|---|" + "---|" * len(tags),
    ]
    for suite, case in dict.fromkeys((c.suite, c.case) for c in r.cells):
        cells = [_interval(by[(suite, case, t)]) for t in tags]
        lines.append(f"| {_md(suite)} | {_md(case)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"**{_md(c.sentence)}**" for c in r.comparisons]
    failed = [x for x in r.runs if x.status != "completed"]
    if failed:
        lines += ["", "| case | version | run | status | why |", "|---|---|---|---|---|"]
        lines += [
            f"| {_md(x.suite)}/{_md(x.case)} | {x.version} | {x.repeat} | {x.status} |"
            f" {_md(x.error[:200]) or '-'} |"
            for x in failed
        ]
    lines += [f"- regression: {_md(line)}" for line in r.regressions]
    if r.interrupted:
        lines.append("- interrupted: no eval run was recorded")
    return "\n".join(lines) + "\n"
