"""Reading a skill's sessions, versions, eval runs and lineage: what ``skills``, ``skill show``,
``eval run``, ``promote`` and ``lineage`` print."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import apsw
import msgspec

from ..events import events_at
from ..events.types import EvalCaseResult
from ._stats import Median, Share, compare, compare_medians, median_interval, wilson
from .annotations import list_annotations, newest_labels
from .copies import copies as copies_of
from .replay_runs import ReplaySummary, replay_summaries
from .skill_aliases import names_of, skill_aliases
from .skill_folders import Folders, every_skills_scopes, scope_text, skill_folders
from .usage import session_costs
from .verdict import COUNTED
from .verdict import VERDICTS as VERDICT_NAMES

_dec = msgspec.json.Decoder()
_cases = msgspec.json.Decoder(list[EvalCaseResult])
VERDICTS = VERDICT_NAMES  # how a session ended (projections.verdict)
LABELS = ("good", "bad", "blocked", "neutral")


class SkillSession(msgspec.Struct):
    """A session that loaded the skill, and the version (body hash) it loaded last."""

    session_id: str
    agent: str
    started_at: str | None
    ended_at: str | None
    verdict: str | None
    version_hash: str | None
    tokens: int | None
    duration_ms: int | None
    label: str | None = None
    # When the session first loaded the skill (the SKILL span's transcript time).
    loaded_at: str | None = None
    cwd: str | None = None
    calls: int | None = None
    # USD when every model response of the session was priced (None: not reported or not
    # all priced: a partial sum would flatter the version).
    cost_usd: float | None = None
    # The session that counts when this one is a copy of it (projections.copies).
    copy_of: str | None = None


def duration_ms(started: str | None, ended: str | None) -> int | None:
    """Milliseconds between two recorded ISO times; None when either is missing."""
    if not started or not ended:
        return None
    try:
        a = datetime.fromisoformat(started.replace("Z", "+00:00"))
        b = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, round((b - a).total_seconds() * 1000))


class SkillLoad(msgspec.Struct):
    """How one session loaded a skill under any of its names (projections.sessions folds it
    into p_skill_loads per name): when first, the version loaded last, and from the first
    load to the end of the session the tool calls made and the tokens its model calls
    reported (None: none reported, or never loaded at a known time)."""

    loaded_at: str | None
    version_hash: str | None
    calls: int | None
    tokens: int | None


def skill_loads(conn: apsw.Connection, names: list[str]) -> dict[str, SkillLoad]:
    """Each session's load of the skill named ``names`` (its name and aliases), by session.

    The names' rows combine as one name's spans would: the earliest load dates it (and what
    followed is counted from there), the version is the one its last span with a hash named."""
    marks = ", ".join("?" for _ in names)
    out: dict[str, SkillLoad] = {}
    newest: dict[str, int] = {}  # the seq of the span that named the version
    for sid, at, digest, seq, calls, tokens in conn.execute(
        "SELECT session_id, loaded_at, version_hash, version_seq, calls, tokens"
        f" FROM p_skill_loads WHERE skill IN ({marks})",
        names,
    ):
        load = out.get(sid)
        if load is None:
            out[sid] = SkillLoad(at, digest, calls, tokens)
            if digest is not None:
                newest[sid] = seq
            continue
        if at is not None and (load.loaded_at is None or at < load.loaded_at):
            load.loaded_at, load.calls, load.tokens = at, calls, tokens
        if digest is not None and (sid not in newest or seq > newest[sid]):
            load.version_hash = digest
            newest[sid] = seq
    return out


def skill_sessions(
    conn: apsw.Connection,
    skill: str,
    *,
    since: str | None = None,
    agent: str | None = None,
    copies: bool = False,
) -> list[SkillSession]:
    """Sessions that loaded ``skill`` under any of its names (skill_aliases), newest first,
    each with the body hash it loaded last.

    A copy of another session (the same responses: projections.copies) is one conversation
    counted once, so it is left out unless ``copies`` (then marked ``copy_of``)."""
    names = names_of(conn, skill)
    marks = ", ".join("?" for _ in names)
    loads = skill_loads(conn, names)
    where = [f"session_id IN (SELECT session_id FROM p_session_skills WHERE skill IN ({marks}))"]
    args: list[object] = [*names]
    if since:
        where.append("started_at >= ?")
        args.append(since)
    if agent:
        where.append("agent = ?")
        args.append(agent)
    out = []
    for sid, ag, started, ended, verdict, t_in, t_out, cwd, tools in conn.execute(
        "SELECT session_id, agent, started_at, ended_at, verdict, tokens_input, tokens_output,"
        f" cwd, tools FROM p_sessions WHERE {' AND '.join(where)}"
        " ORDER BY started_at DESC, session_id",
        args,
    ):
        tokens = None if t_in is None and t_out is None else (t_in or 0) + (t_out or 0)
        out.append(
            SkillSession(
                session_id=sid,
                agent=ag,
                started_at=started,
                ended_at=ended,
                verdict=verdict,
                version_hash=loads[sid].version_hash if sid in loads else None,
                tokens=tokens,
                duration_ms=duration_ms(started, ended),
                loaded_at=loads[sid].loaded_at if sid in loads else None,
                cwd=cwd,
                calls=tools,
            )
        )
    copied = copies_of(conn, [s.session_id for s in out])
    if not copies:
        out = [s for s in out if s.session_id not in copied]
    labels = newest_labels(conn, [s.session_id for s in out], skill=names[0])
    costs = session_costs(conn, [s.session_id for s in out])
    for s in out:
        s.copy_of = copied.get(s.session_id)
        s.label = labels.get(s.session_id)
        cost = costs.get(s.session_id)
        s.cost_usd = cost.usd if cost is not None and not cost.unpriced else None
    return out


class VersionRow(msgspec.Struct):
    """A recorded version of a skill."""

    skill: str
    version_hash: str
    tag: int
    source: str
    first_session: str | None
    parent_hash: str | None
    directory: str | None
    position: int
    at: str

    @property
    def name(self) -> str:
        return f"v{self.tag}"


def versions(conn: apsw.Connection, skill: str) -> list[VersionRow]:
    """The skill's versions, oldest tag first."""
    return [
        VersionRow(skill, *row)
        for row in conn.execute(
            "SELECT version_hash, tag, source, first_session, parent_hash, directory, position,"
            " at FROM p_skill_versions WHERE skill = ? ORDER BY tag",
            (skill,),
        )
    ]


def first_loads(conn: apsw.Connection, names: list[str]) -> dict[tuple[str, str], str]:
    """Per (name, body hash), when a session first loaded that body under that name."""
    marks = ", ".join("?" for _ in names)
    out: dict[tuple[str, str], str] = {}
    for name, digest, start in conn.execute(
        "SELECT json_extract(attributes, '$.\"skill.name\"'),"
        " json_extract(attributes, '$.\"skill.content_hash\"'), min(start) FROM p_spans"
        f" WHERE kind = 'SKILL' AND json_extract(attributes, '$.\"skill.name\"') IN ({marks})"
        " AND start IS NOT NULL GROUP BY 1, 2",
        names,
    ):
        if isinstance(name, str) and isinstance(digest, str) and isinstance(start, str):
            out[(name, digest)] = start
    return out


def first_loaded(conn: apsw.Connection, names: list[str], folders: Folders) -> dict[str, str]:
    """Per body hash of the skill ``names[0]`` (its aliases after it), when a session first
    loaded that body, under any of the names: ``superpowers:brainstorming`` loading the
    plugin's body on day 1 is that body's first load (H6).

    One exception keeps the tags of one skill in order (G8): a tag counts the bodies first
    loaded under its own name, so when only an alias's earlier load would date it before a
    lower tag of the same name and the same skill (not loaded apart, from another project's or
    plugin's folder), it is dated by its first load under its own name. A body captured late
    (a backfill) is dated truly either way, and ``captured_late`` says why."""
    firsts = first_loads(conn, names)
    earliest: dict[str, str] = {}
    for (_, digest), start in firsts.items():
        if digest not in earliest or start < earliest[digest]:
            earliest[digest] = start
    known: list[VersionRow] = []
    for name in names:
        have = {v.version_hash for v in known}
        known += [v for v in versions(conn, name) if v.version_hash not in have]
    known.sort(key=lambda v: v.position)
    out: dict[str, str] = {}
    for i, version in enumerate(known):
        digest = version.version_hash
        at = earliest.get(digest)
        own = firsts.get((version.skill, digest))
        if (
            at is not None
            and own is not None
            and at < own
            and any(
                lower.skill == version.skill
                and not folders.apart(digest, lower.version_hash)
                and out.get(lower.version_hash, "") > at
                for lower in known[:i]
            )
        ):
            at = own
        if at is not None:
            out[digest] = at
    for digest, start in earliest.items():
        out.setdefault(digest, start)
    return out


def version_body(conn: apsw.Connection, version: VersionRow) -> str | None:
    """The normalized body a version was recorded with (None when erased or not seen whole)."""
    event = events_at(conn, [version.position]).get(version.position)
    body = getattr(event, "body", None)
    return body if isinstance(body, str) and body else None


def resolve_version(conn: apsw.Connection, skill: str, ref: str) -> VersionRow | None:
    """A version by tag (``v3``) or by its hash or a unique prefix of it (6+ characters)."""
    found = versions(conn, skill)
    text = ref.strip()
    if text[:1] in ("v", "V") and text[1:].isdigit():
        return next((v for v in found if v.tag == int(text[1:])), None)
    matches = [v for v in found if v.version_hash == text]
    if not matches and len(text) >= 6:
        matches = [v for v in found if v.version_hash.startswith(text.lower())]
    return matches[0] if len(matches) == 1 else None


class RunRow(msgspec.Struct):
    """A recorded eval run."""

    run_id: str
    skill: str
    version_hash: str
    suite_hash: str
    deriver_version: int
    sessions: list[str]
    passed: bool
    cases: list[EvalCaseResult]
    suites: list[str]
    all_suites: list[str]
    baseline_run_id: str | None
    position: int
    at: str
    scope: str = ""
    suite_path: str = ""

    @property
    def full(self) -> bool:
        """Graded every captured session under every suite of its file (not a subset)."""
        return not self.scope and sorted(self.suites) == sorted(self.all_suites)

    @property
    def graded_sessions(self) -> list[str]:
        """Distinct sessions at least one case graded."""
        return sorted({r.session_id for c in self.cases for r in c.results})


def _run(row: tuple[Any, ...]) -> RunRow:
    (rid, skill, vh, sh, dv, sessions, passed, cases, suites, all_suites, base, pos, at) = row[:13]
    scope, suite_path = row[13:15]
    return RunRow(
        run_id=rid,
        skill=skill,
        version_hash=vh,
        suite_hash=sh,
        deriver_version=dv,
        sessions=_dec.decode(sessions),
        passed=bool(passed),
        cases=_cases.decode(cases),
        suites=_dec.decode(suites),
        all_suites=_dec.decode(all_suites),
        baseline_run_id=base,
        position=pos,
        at=at,
        scope=scope,
        suite_path=suite_path,
    )


def eval_runs(conn: apsw.Connection, skill: str, version_hash: str | None = None) -> list[RunRow]:
    """Eval runs of the skill (of one version if given), newest first (log order)."""
    sql = "SELECT * FROM p_eval_runs WHERE skill = ?"
    args: list[object] = [skill]
    if version_hash is not None:
        sql += " AND version_hash = ?"
        args.append(version_hash)
    return [_run(r) for r in conn.execute(sql + " ORDER BY position DESC", args)]


def champion(conn: apsw.Connection, skill: str) -> str | None:
    """The hash of the newest champion: promoted, rolled back to, or managed from import."""
    row = conn.execute(
        "SELECT version_hash FROM (SELECT position, version_hash FROM p_promotions"
        " WHERE skill = ? UNION ALL SELECT position, version_hash FROM p_version_changes"
        " WHERE skill = ? AND (kind = 'rollback' OR (kind = 'managed' AND position ="
        " (SELECT min(position) FROM p_version_changes WHERE skill = ? AND kind = 'managed'))))"
        " ORDER BY position DESC LIMIT 1",
        (skill, skill, skill),
    ).fetchone()
    return row[0] if row else None


# --- skills overview ------------------------------------------------------------------


class SkillSummary(msgspec.Struct):
    """One skill in ``skills``."""

    skill: str
    sessions: int
    versions: int
    last_used: str | None
    agents: dict[str, int]
    verdicts: dict[str, int]
    success: Share
    # Other names the skill was loaded under, with the same body (skill_aliases).
    aliases: list[str] = []
    # Every scope its loads came from (skill_folders): more than one, the name covers several
    # projects' skills and ``versions`` counts bodies of different skills.
    projects: list[str] = []


def skills_overview(
    conn: apsw.Connection, *, since: str | None = None, agent: str | None = None
) -> list[SkillSummary]:
    """Every skill a session loaded, most recently used first."""
    where = []
    args: list[object] = []
    if since:
        where.append("s.started_at >= ?")
        args.append(since)
    if agent:
        where.append("s.agent = ?")
        args.append(agent)
    sql = (
        "SELECT k.skill, k.session_id, s.agent, coalesce(s.verdict, 'none'), s.started_at"
        " FROM p_session_skills k JOIN p_sessions s USING (session_id)"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    aliases = skill_aliases(conn)
    by_skill: dict[str, SkillSummary] = {}
    seen: set[tuple[str, str]] = set()  # (skill, session): a session loading both names once
    rows: list[tuple[Any, ...]] = conn.execute(sql, args).fetchall()
    copied = copies_of(conn, {r[1] for r in rows})
    for name, sid, ag, verdict, started in rows:
        if sid in copied:
            continue  # a copy of another session: one conversation, counted once
        skill = aliases.get(name, name)
        summary = by_skill.setdefault(skill, SkillSummary(skill, 0, 0, None, {}, {}, wilson(0, 0)))
        if (skill, sid) in seen:
            continue
        seen.add((skill, sid))
        summary.sessions += 1
        summary.agents[ag] = summary.agents.get(ag, 0) + 1
        summary.verdicts[verdict] = summary.verdicts.get(verdict, 0) + 1
        if started and (summary.last_used is None or started > summary.last_used):
            summary.last_used = started
    bodies: dict[str, set[str]] = {}
    for name, digest in conn.execute("SELECT skill, version_hash FROM p_skill_versions"):
        bodies.setdefault(aliases.get(name, name), set()).add(digest)
    for alias, skill in aliases.items():
        if skill in by_skill:
            by_skill[skill].aliases.append(alias)
    scopes = every_skills_scopes(conn, aliases)
    for summary in by_skill.values():
        summary.projects = scopes.get(summary.skill, [])
        summary.aliases.sort()
        summary.versions = len(bodies.get(summary.skill, ()))
        counted = sum(n for v, n in summary.verdicts.items() if v in COUNTED)
        summary.success = wilson(summary.verdicts.get("success", 0), counted)
    return sorted(by_skill.values(), key=lambda s: (s.last_used or "", s.skill), reverse=True)


# --- skill show -----------------------------------------------------------------------


class Mean(msgspec.Struct):
    """A mean over the sessions that reported the value; ``n`` says how many did."""

    mean: float | None
    n: int


def _mean(values: list[int | None]) -> Mean:
    reported = [v for v in values if v is not None]
    return Mean(sum(reported) / len(reported) if reported else None, len(reported))


class EvalVerdict(msgspec.Struct):
    """The newest eval run of a version, in brief."""

    run_id: str
    passed: bool
    graded: int
    suite_hash: str
    at: str


class Scoped(msgspec.Struct):
    """From the skill's load to the end of the session: calls made, tokens, time."""

    calls: Mean
    tokens: Mean
    duration_ms: Mean


class VersionStats(msgspec.Struct):
    """One version in ``skill show``: over the sessions that loaded it."""

    tag: str
    content_hash: str
    sessions: list[str]
    verdicts: dict[str, Share]
    labels: dict[str, Share]
    labelled: int
    tokens: Mean
    duration_ms: Mean
    eval: EvalVerdict | None
    # When it was captured (the log's time) and when a session first loaded it (transcript
    # time): a backfill captures old versions today, so only the second dates a version.
    first_seen: str | None = None
    first_loaded: str | None = None
    calls: Mean | None = None
    scoped: Scoped | None = None
    # USD per session: median with its distribution-free 95 % interval, over priced sessions.
    cost: Median = Median(median=None, low=None, high=None, n=0)
    # Where its loads came from (skill_folders): the scopes (a project, a home, "managed")
    # and the folders themselves; empty when no load recorded a folder.
    projects: list[str] = []
    folders: list[str] = []
    # Sessions whose verdict is unfinished or none: in ``sessions``, in no verdict's n.
    uncounted: int = 0


class Baseline(msgspec.Struct):
    """Sessions that did not load the skill, in the same projects (cwd) over the same period
    as those that did: an observational comparison, not an experiment."""

    sessions: int
    projects: list[str]
    since: str | None
    until: str | None
    verdicts: dict[str, Share]
    labels: dict[str, Share]
    labelled: int
    calls: Mean
    tokens: Mean
    duration_ms: Mean
    # USD per session, as for a version: median and 95 % interval over fully priced sessions.
    cost: Median = Median(median=None, low=None, high=None, n=0)
    # Sessions whose verdict is unfinished or none: in ``sessions``, in no verdict's n.
    uncounted: int = 0


class SkillReport(msgspec.Struct):
    """``skill show NAME``: per version, with one reading line."""

    skill: str
    champion: str | None
    versions: list[VersionStats]
    reading: str
    unversioned_sessions: int = 0
    baseline: Baseline | None = None
    # The newest ``eval replay`` of each version replayed (same tasks for every version).
    replays: list[ReplaySummary] = []
    # Other names the skill was loaded under, with the same body (skill_aliases).
    aliases: list[str] = []
    # Every scope its loads came from; more than one: the name covers several projects'
    # skills, whose versions are never read as an edit of one another (skill_folders).
    projects: list[str] = []


def verdict_shares(verdicts: Sequence[str | None]) -> dict[str, Share]:
    """Each counted verdict's share of the sessions a success rate counts (``COUNTED``: not
    ``unfinished``, not none), as an A/B test's executions count them."""
    n = sum(1 for v in verdicts if v in COUNTED)
    return {v: wilson(sum(1 for x in verdicts if x == v), n) for v in COUNTED}


def _scoped(group: list[SkillSession], loads: dict[str, SkillLoad]) -> Scoped:
    """Per session, what followed the skill's first load: calls, tokens, time to the end."""
    calls: list[int | None] = []
    tokens: list[int | None] = []
    times: list[int | None] = []
    for s in group:
        load = loads.get(s.session_id)
        if s.loaded_at is None or load is None:
            calls.append(None)
            tokens.append(None)
            times.append(None)
            continue
        # Tool calls, as the session's own count (``tools``) counts them.
        calls.append(load.calls)
        tokens.append(load.tokens)
        times.append(duration_ms(s.loaded_at, s.ended_at))
    return Scoped(calls=_mean(calls), tokens=_mean(tokens), duration_ms=_mean(times))


def _baseline(conn: apsw.Connection, skill: str, loaded: list[SkillSession]) -> Baseline | None:
    """The sessions in the same projects over the same period that did not load ``skill``."""
    projects = sorted({s.cwd for s in loaded if s.cwd})
    starts = sorted(s.started_at for s in loaded if s.started_at)
    if not projects or not starts:
        return None
    since, until = starts[0], starts[-1]
    marks = ",".join("?" * len(projects))
    names = names_of(conn, skill)
    loaded_as = ",".join("?" * len(names))
    rows: list[tuple[Any, ...]] = conn.execute(
        "SELECT session_id, started_at, ended_at, verdict, tokens_input, tokens_output, tools"
        f" FROM p_sessions WHERE cwd IN ({marks}) AND started_at >= ? AND started_at <= ?"
        " AND session_id NOT IN"
        f" (SELECT session_id FROM p_session_skills WHERE skill IN ({loaded_as}))"
        " ORDER BY started_at, session_id",
        [*projects, since, until, *names],
    ).fetchall()
    copied = copies_of(conn, [r[0] for r in rows])
    rows = [r for r in rows if r[0] not in copied]  # one conversation, counted once
    n = len(rows)
    labels = newest_labels(conn, [r[0] for r in rows])
    labelled = [labels[r[0]] for r in rows if r[0] in labels]
    costs = session_costs(conn, [r[0] for r in rows])
    priced = [c.usd for c in costs.values() if c.usd is not None and not c.unpriced]
    return Baseline(
        sessions=n,
        projects=projects,
        since=since,
        until=until,
        verdicts=verdict_shares([r[3] for r in rows]),
        uncounted=sum(1 for r in rows if r[3] not in COUNTED),
        labels={lb: wilson(labelled.count(lb), len(labelled)) for lb in LABELS},
        labelled=len(labelled),
        calls=_mean([r[6] for r in rows]),
        tokens=_mean(
            [None if r[4] is None and r[5] is None else (r[4] or 0) + (r[5] or 0) for r in rows]
        ),
        duration_ms=_mean([duration_ms(r[1], r[2]) for r in rows]),
        cost=median_interval(priced),
    )


def skill_report(conn: apsw.Connection, skill: str) -> SkillReport | None:
    """Per-version shares with Wilson intervals, costs and newest eval; None if never seen.

    ``skill`` may be an alias: the report is of the skill it names, versions recorded under
    an alias only (a body the plain name never loaded) shown with that name."""
    skill, *aliases = names_of(conn, skill)
    folders = skill_folders(conn, skill)
    sessions = skill_sessions(conn, skill)
    loads = skill_loads(conn, names_of(conn, skill))
    known = versions(conn, skill)
    for alias in aliases:
        have = {v.version_hash for v in known}
        known += [v for v in versions(conn, alias) if v.version_hash not in have]
    known.sort(key=lambda v: v.position)
    if not sessions and not known:
        return None
    tags = {v.version_hash: v for v in known}
    firsts = first_loaded(conn, [skill, *aliases], folders)
    grouped: dict[str, list[SkillSession]] = {}
    unversioned = 0
    for s in sessions:
        if s.version_hash is None:
            unversioned += 1
            continue
        grouped.setdefault(s.version_hash, []).append(s)
    order = [v.version_hash for v in reversed(known)]
    order += sorted(h for h in grouped if h not in tags)
    out = []
    for digest in order:
        group = grouped.get(digest, [])
        labelled = [s.label for s in group if s.label]
        # A subset run (``--last``, ``--session``, one ``--suite``) proves less than it seems.
        newest = [r for r in eval_runs(conn, skill, digest) if r.full]
        run = newest[0] if newest else None
        version = tags.get(digest)
        tag = "v?" if version is None else version.name
        if version is not None and version.skill != skill:
            tag = f"{version.skill} {tag}"
        out.append(
            VersionStats(
                tag=tag,
                content_hash=digest,
                sessions=[s.session_id for s in group],
                verdicts=verdict_shares([s.verdict for s in group]),
                uncounted=sum(1 for s in group if s.verdict not in COUNTED),
                labels={lb: wilson(labelled.count(lb), len(labelled)) for lb in LABELS},
                labelled=len(labelled),
                tokens=_mean([s.tokens for s in group]),
                duration_ms=_mean([s.duration_ms for s in group]),
                eval=EvalVerdict(
                    run.run_id, run.passed, len(run.graded_sessions), run.suite_hash, run.at
                )
                if run
                else None,
                first_seen=version.at if version else None,
                first_loaded=firsts.get(digest)
                or min((x.loaded_at for x in group if x.loaded_at), default=None),
                calls=_mean([x.calls for x in group]),
                scoped=_scoped(group, loads),
                cost=median_interval([s.cost_usd for s in group if s.cost_usd is not None]),
                projects=folders.of(digest),
                folders=folders.folders.get(digest, []),
            )
        )
    with_data = [v for v in out if v.sessions]
    pair = _comparable(with_data, folders)
    if pair is None:
        reading = _apart(skill, with_data, folders)
    elif pair:
        a, b = pair
        reading = compare(a.tag, a.verdicts["success"], b.tag, b.verdicts["success"])
        reading = reading.replace(" points", " points of success")
        if a.labelled and b.labelled:
            labels = compare(a.tag, a.labels["good"], b.tag, b.labels["good"])
            reading += "; labelled good: " + labels.split(": ", 1)[1]
        if a.cost.n and b.cost.n:
            reading += "; cost/session: " + compare_medians(a.tag, a.cost, b.tag, b.cost)
        if a.eval is not None and b.eval is not None:
            verdicts = [
                f"{tag} {'passed' if run.passed else 'failed'}"
                for tag, run in ((a.tag, a.eval), (b.tag, b.eval))
            ]
            reading += f"; newest evals: {', '.join(verdicts)}"
        if folders.shared:
            reading = f"{a.tag} and {b.tag} from {scope_text(a.projects[0])}: {reading}"
    elif with_data:
        reading = f"only {with_data[0].tag} has sessions: nothing to compare yet"
    else:
        reading = "no session has loaded a recorded version yet"
    baseline = _baseline(conn, skill, sessions)
    if baseline is not None and baseline.sessions and with_data and not folders.shared:
        latest = with_data[0]
        against = compare(
            latest.tag, latest.verdicts["success"], "without", baseline.verdicts["success"]
        )
        reading += "; " + against.replace(" points", " points of success", 1).replace(
            "without:", "not loading it (observational):", 1
        )
    return SkillReport(
        skill=skill,
        champion=champion(conn, skill),
        versions=out,
        reading=reading,
        unversioned_sessions=unversioned,
        baseline=baseline,
        replays=_newest_replays(conn, skill),
        aliases=aliases,
        projects=folders.scopes,
    )


def _comparable(
    with_data: list[VersionStats], folders: Folders
) -> tuple[VersionStats, VersionStats] | tuple[()] | None:
    """The two versions the reading compares: the newest two with sessions, or, when the name
    covers several projects' skills, the newest two loaded from one scope (None: no two are;
    ``()``: fewer than two versions have sessions)."""
    if len(with_data) < 2:
        return ()
    if not folders.shared:
        return with_data[0], with_data[1]
    for i, a in enumerate(with_data):
        if len(a.projects) != 1:
            continue
        for b in with_data[i + 1 :]:
            if b.projects == a.projects:
                return a, b
    return None


def _apart(skill: str, with_data: list[VersionStats], folders: Folders) -> str:
    """The reading when the versions with sessions come from different projects' (or
    plugins') folders."""
    where = "; ".join(
        f"{v.tag} from {', '.join(scope_text(p) for p in v.projects) or 'an unrecorded folder'}"
        for v in with_data
    )
    return (
        f"{skill} names {len(folders.scopes)} different skills ({where}): skills that share a"
        " name, not versions of one: not compared"
    )


def _newest_replays(conn: apsw.Connection, skill: str) -> list[ReplaySummary]:
    newest = replay_summaries(conn, skill)
    if not newest:
        return []
    return [r for r in newest if r.replay_id == newest[0].replay_id]


# --- lineage --------------------------------------------------------------------------


class LineageEntry(msgspec.Struct, omit_defaults=True):
    """One event in a skill's timeline."""

    at: str
    kind: str
    position: int
    content_hash: str | None = None
    tag: str | None = None
    parent_hash: str | None = None
    source: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    passed: bool | None = None
    graded: int | None = None
    suite_hash: str | None = None
    label: str | None = None
    note: str | None = None
    author: str | None = None
    retracted: bool | None = None
    cleared: bool | None = None
    forced: bool | None = None
    reason: str | None = None
    decision: str | None = None
    scope: str | None = None  # an eval run limited to a subset: what it was limited to


def lineage(conn: apsw.Connection, skill: str, *, since: str | None = None) -> list[LineageEntry]:
    """Versions, eval runs, annotations, gate decisions and promotions, newest first."""
    known = versions(conn, skill)
    tag = {v.version_hash: v.name for v in known}
    out: list[LineageEntry] = []
    for v in known:
        out.append(
            LineageEntry(
                at=v.at,
                kind="version",
                position=v.position,
                content_hash=v.version_hash,
                tag=v.name,
                parent_hash=v.parent_hash,
                source=v.source,
                session_id=v.first_session,
            )
        )
    for run in eval_runs(conn, skill):
        out.append(
            LineageEntry(
                at=run.at,
                kind="eval_run",
                position=run.position,
                content_hash=run.version_hash,
                tag=tag.get(run.version_hash, "v?"),
                run_id=run.run_id,
                passed=run.passed,
                graded=len(run.graded_sessions),
                suite_hash=run.suite_hash,
                scope=run.scope or None,
            )
        )
    for a in list_annotations(conn, skill=skill):
        out.append(
            LineageEntry(
                at=a.at,
                kind="annotation",
                position=a.position,
                session_id=a.session_id,
                label=a.label,
                note=a.note or None,
                author=a.author,
                retracted=a.retracted,
                reason=a.retract_reason,
            )
        )
    for pos, vh, cleared, run_id, reason, forced, author, at in conn.execute(
        "SELECT position, version_hash, cleared, run_id, reason, forced, author, at"
        " FROM p_gate_decisions WHERE skill = ?",
        (skill,),
    ):
        out.append(
            LineageEntry(
                at=at,
                kind="gate",
                position=pos,
                content_hash=vh,
                tag=tag.get(vh, "v?"),
                run_id=run_id,
                cleared=bool(cleared),
                forced=bool(forced),
                reason=reason,
                author=author,
            )
        )
    for pos, vh, prev, reason, forced, run_id, author, at in conn.execute(
        "SELECT position, version_hash, previous_hash, reason, forced, gate_run_id, author, at"
        " FROM p_promotions WHERE skill = ?",
        (skill,),
    ):
        out.append(
            LineageEntry(
                at=at,
                kind="promotion",
                position=pos,
                content_hash=vh,
                tag=tag.get(vh, "v?"),
                parent_hash=prev,
                run_id=run_id,
                forced=bool(forced),
                reason=reason,
                author=author,
            )
        )
    for pos, kind, vh, prev, reason, decision, author, at in conn.execute(
        "SELECT position, kind, version_hash, previous_hash, reason, decision, author, at"
        " FROM p_version_changes WHERE skill = ?",
        (skill,),
    ):
        out.append(
            LineageEntry(
                at=at,
                kind=kind,
                position=pos,
                content_hash=vh or None,
                tag=tag.get(vh, "v?") if vh else None,
                parent_hash=prev,
                reason=reason or None,
                decision=decision or None,
                author=author or None,
            )
        )
    for r in replay_summaries(conn, skill):
        out.append(
            LineageEntry(
                at=r.at,
                kind="replay",
                position=r.position,
                content_hash=r.version_hash,
                tag=tag.get(r.version_hash, "v?"),
                run_id=r.eval_run_id,
                passed=r.eval_passed,
                graded=r.runs,
                reason=replay_text(r),
            )
        )
    if out:
        # Policy changes are every skill's history: they change what its evidence decides.
        for pos, name, values, author, at in conn.execute(
            'SELECT position, name, "values", author, at FROM p_policy_changes'
        ):
            stored = _dec.decode(values)
            said = ", ".join(f"{k}={v}" for k, v in sorted(stored.items())) or "all defaults"
            out.append(
                LineageEntry(
                    at=at,
                    kind="policy",
                    position=pos,
                    reason=f"policy {name}: {said}",
                    decision=name,
                    author=author or None,
                )
            )
    if since:
        out = [e for e in out if e.at >= since]
    return sorted(out, key=lambda e: e.position, reverse=True)


def replay_text(r: ReplaySummary) -> str:
    """``replay 1a2b3c4d5e6f: 5/6 runs passed [64–100] (1 timeout)``."""
    share = r.passed
    if share is None or share.share is None or share.low is None or share.high is None:
        passed = f"{r.runs} run(s), not graded"
    else:
        passed = f"{share.k}/{share.n} runs passed [{share.low * 100:.0f}–{share.high * 100:.0f}]"
    others = ", ".join(f"{n} {s}" for s, n in sorted(r.statuses.items()) if s != "completed")
    return f"replay {r.replay_id[:12]}: {passed}" + (f" ({others})" if others else "")
