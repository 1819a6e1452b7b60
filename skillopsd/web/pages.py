"""The dashboard's pages: each reads through the same query functions the CLI's ``--json``
prints, so a number on a page is the number the CLI gives, by construction."""

from __future__ import annotations

import getpass
from collections import Counter
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

import click
import jinja2
import msgspec
from markupsafe import Markup

from ..annotating import LABELS, AnnotationRefused, add_annotation
from ..cli._reason import first_reason
from ..cli._time import UNTIL, WHEN, parse_stored, shown, zone_label
from ..cli.lineage import _detail as lineage_detail
from ..cli.sessions import _preview
from ..cli.skills import _mean as mean_text
from ..cli.skills import share_text
from ..cli.versions import VersionsJson, versions_json
from ..events import Database, EventLog
from ..projections import engine_for
from ..projections._stats import wilson
from ..projections.annotations import list_annotations, newest_labels
from ..projections.session_views import (
    SessionFilter,
    SessionView,
    SpanView,
    count_sessions,
    find_session,
    list_sessions,
    session_candidates,
    spans_of,
)
from ..projections.skill_views import (
    SkillReport,
    eval_runs,
    lineage,
    skill_report,
    skill_sessions,
    skills_overview,
    versions,
)
from ..projections.verdict import COUNTED
from ..projections.verdict import VERDICTS as RULE_VERDICTS
from ..versions._bandit import decide_state
from ..versions.decision import decide
from ..versions.policy import BanditPolicy, bandit_policy
from ..versions.routing import ArmStats
from ..versions.state import SkillState, fold
from ..versions.store import skill_stream
from . import charts

PAGE_SIZE = 50
# The rule's values (defined once, in projections/verdict.py) and no verdict.
VERDICTS = (*RULE_VERDICTS, "none")
_VERDICT_CSS = {v: f"v-{v}" for v in VERDICTS}
_AGENT_CSS = ("a-0", "a-1", "a-2", "a-3", "a-4")
OVERVIEW_DAYS = 90
OPEN_ALL_SPANS = 300


class Response(msgspec.Struct):
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = {}


class PageNotFound(Exception):
    """No such page, session or skill: a 404 with this message."""


class BadRequest(Exception):
    """A parameter the page cannot use: a 400 with this message."""


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    value = values[-1].strip() if values else ""
    return value or None


def _local_day(stamp: str | None) -> date | None:
    moment = parse_stored(stamp)
    return shown(moment, False).date() if moment is not None else None


def _total_tokens(s: SessionView) -> int | None:
    t = s.tokens
    if t.input is None and t.output is None:
        return None
    return (t.input or 0) + (t.output or 0)


def _when(stamp: str | None) -> str:
    moment = parse_stored(stamp)
    return shown(moment, False).strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _duration(start: str | None, end: str | None) -> str:
    a, b = parse_stored(start), parse_stored(end)
    if a is None or b is None:
        return ""
    seconds = (b - a).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


class SpanNode(msgspec.Struct):
    """A span as the session page draws it, with its children."""

    span: SpanView
    detail: str
    reason: str | None
    duration: str
    children: list[SpanNode]
    failed_below: int = 0


def span_tree(spans: list[SpanView]) -> list[SpanNode]:
    """The spans nested under their parents (an orphan is shown at the top, never dropped)."""
    ids = {s.span_id for s in spans}
    nodes: dict[str, SpanNode] = {}
    roots: list[SpanNode] = []
    for span in spans:
        detail = ""
        if span.kind in ("TOOL", "SKILL"):
            detail = _preview(span).strip()
        if span.kind == "SKILL":
            h = span.attributes.get("skill.content_hash")
            activation = span.attributes.get("skill.activation") or "?"
            detail = f"[{activation}{' ' + str(h)[:12] if h else ''}] {detail}".strip()
        elif span.kind == "LLM":
            parts = [
                f"{value:,} {label}"
                for key, label in (
                    ("gen_ai.usage.input_tokens", "in"),
                    ("gen_ai.usage.output_tokens", "out"),
                )
                if isinstance(value := span.attributes.get(key), int)
            ]
            detail = " / ".join(parts)
        reason = None
        if span.outcome in ("failure", "blocked"):
            reason = first_reason(span.attributes.get("skillops.result.error")) or (
                "(no reason recorded)"
            )
        node = SpanNode(span, detail, reason, _duration(span.start, span.end), [])
        nodes[span.span_id] = node
        parent = span.parent_span_id
        if parent is not None and parent in ids and parent in nodes:
            nodes[parent].children.append(node)
        else:
            roots.append(node)

    def count(node: SpanNode) -> int:
        below = sum(count(c) for c in node.children)
        node.failed_below = below
        return below + (1 if node.span.outcome in ("failure", "blocked") else 0)

    for root in roots:
        count(root)
    return roots


class Pages:
    """Renders every page from one database; the server holds a lock around each call."""

    def __init__(self, db: Database, csrf: str) -> None:
        self.db = db
        self.csrf = csrf
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("skillopsd.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["number"] = lambda v: "-" if v is None else f"{v:,}"
        self.env.filters["when"] = _when
        self.env.filters["pct"] = lambda v: "-" if v is None else f"{v * 100:.0f}%"
        self.env.filters["q"] = lambda v: quote(str(v), safe="")
        self.env.globals["csrf"] = csrf
        self.env.globals["labels"] = LABELS
        self.env.filters["share"] = share_text
        self.env.filters["mean"] = mean_text

    def _render(self, template: str, status: int = HTTPStatus.OK, **context: Any) -> Response:
        html = self.env.get_template(template).render(**context)
        return Response(int(status), html.encode())

    def _caught_up(self) -> None:
        engine_for(self.db).catch_up()

    def error(self, status: int, message: str) -> Response:
        return self._render("error.html", status, title=str(status), message=message)

    # --- overview ------------------------------------------------------------------------

    def overview(self, query: dict[str, list[str]]) -> Response:
        days_text = _one(query, "days") or str(OVERVIEW_DAYS)
        if days_text != "all" and not (days_text.isdigit() and int(days_text) >= 1):
            raise BadRequest("days must be a whole number from 1, or all")
        self._caught_up()
        with self.db.read() as conn:
            every = list_sessions(conn)
            skills = skills_overview(conn)
            started = {s.session_id: s.started_at for s in every}
            changed = []
            for summary in skills:
                for v in versions(conn, summary.skill):
                    # When the version first ran (its first session's start), else when it
                    # was recorded (an import, an edit).
                    at = started.get(v.first_session or "") or v.at
                    changed.append((at, summary.skill, v.name, v.source, v.version_hash))
        changed.sort(reverse=True)
        days = [d for d in (_local_day(s.started_at) for s in every) if d is not None]
        last = max(days, default=None)
        first = min(days, default=None)
        span_days: list[date] = []
        if last is not None and first is not None:
            start = first
            if days_text != "all":
                start = max(first, last - timedelta(days=int(days_text) - 1))
            span_days = [start + timedelta(days=i) for i in range((last - start).days + 1)]
        index = {d: i for i, d in enumerate(span_days)}
        agents = sorted({s.agent for s in every})
        by_agent = {a: [0] * len(span_days) for a in agents}
        by_verdict = {v: [0] * len(span_days) for v in VERDICTS}
        tokens = [0] * len(span_days)
        in_window = 0
        for s in every:
            d = _local_day(s.started_at)
            if d is None or d not in index:
                continue
            i = index[d]
            in_window += 1
            by_agent[s.agent][i] += 1
            by_verdict[s.verdict or "none"][i] += 1
            tokens[i] += _total_tokens(s) or 0
        labels = [d.strftime("%m-%d") for d in span_days]
        agent_series = [
            charts.Series(a, _AGENT_CSS[i % len(_AGENT_CSS)], by_agent[a])
            for i, a in enumerate(agents)
        ]
        verdict_series = [charts.Series(v, _VERDICT_CSS[v], by_verdict[v]) for v in VERDICTS]
        token_series = [charts.Series("tokens", "s-tokens", tokens)]
        verdicts = Counter(s.verdict or "none" for s in every)
        moments = [m for m in (parse_stored(s.started_at) for s in every) if m is not None]
        return self._render(
            "overview.html",
            title="Overview",
            nav="overview",
            total=len(every),
            verdicts={v: verdicts.get(v, 0) for v in VERDICTS},
            agents={a: sum(1 for s in every if s.agent == a) for a in agents},
            total_tokens=sum(_total_tokens(s) or 0 for s in every),
            tokens_reported=sum(1 for s in every if _total_tokens(s) is not None),
            window=(span_days[0], span_days[-1]) if span_days else None,
            days=days_text,
            in_window=in_window,
            zone=zone_label([shown(m, False) for m in moments]) if moments else "",
            by_agent=charts.stacked_bars(labels, agent_series, "sessions per day by agent"),
            agent_legend=charts.legend(agent_series),
            by_verdict=charts.stacked_bars(labels, verdict_series, "sessions per day by verdict"),
            verdict_legend=charts.legend(verdict_series),
            tokens=charts.stacked_bars(labels, token_series, "tokens per day", " tokens"),
            skills=skills[:10],
            changed=changed[:10],
        )

    # --- sessions ------------------------------------------------------------------------

    def _bound(self, query: dict[str, list[str]], key: str) -> str | None:
        text = _one(query, key)
        if text is None:
            return None
        try:
            return (UNTIL if key == "until" else WHEN).convert(text, None, None)
        except click.BadParameter as exc:
            raise BadRequest(f"{key}: {exc.format_message()}") from exc

    def sessions(self, query: dict[str, list[str]]) -> Response:
        verdict = _one(query, "verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise BadRequest(f"verdict must be one of {', '.join(VERDICTS)}")
        page_text = _one(query, "page") or "1"
        if not page_text.isdigit() or int(page_text) < 1:
            raise BadRequest("page must be a whole number from 1")
        page = int(page_text)
        chosen = SessionFilter(
            agent=_one(query, "agent"),
            skill=_one(query, "skill"),
            verdict=verdict,
            since=self._bound(query, "since"),
            until=self._bound(query, "until"),
            search=_one(query, "q"),
        )
        self._caught_up()
        with self.db.read() as conn:
            total = count_sessions(conn, chosen)
            found = list_sessions(
                conn,
                **msgspec.structs.asdict(chosen),
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
            labels = newest_labels(conn, [s.session_id for s in found])
            agents = [r[0] for r in conn.execute("SELECT DISTINCT agent FROM p_sessions")]
            skill_names = [s.skill for s in skills_overview(conn)]
        for s in found:
            s.label = labels.get(s.session_id)
        pages = max(1, -(-total // PAGE_SIZE))
        kept = {
            k: v
            for k in ("agent", "skill", "verdict", "since", "until", "q")
            if (v := _one(query, k)) is not None
        }
        moments = [m for m in (parse_stored(s.started_at) for s in found) if m is not None]
        return self._render(
            "sessions.html",
            title="Sessions",
            nav="sessions",
            sessions=found,
            tokens={s.session_id: _total_tokens(s) for s in found},
            total=total,
            page=page,
            pages=pages,
            filters=kept,
            agents=sorted(agents),
            skill_names=sorted(skill_names),
            verdicts=VERDICTS,
            zone=zone_label([shown(m, False) for m in moments]) if moments else "",
            prev_url=f"/sessions?{urlencode({**kept, 'page': page - 1})}" if page > 1 else None,
            next_url=f"/sessions?{urlencode({**kept, 'page': page + 1})}" if page < pages else None,
        )

    def _find(self, ident: str) -> SessionView:
        with self.db.read() as conn:
            found = find_session(conn, ident)
            if found is None:
                candidates = session_candidates(conn, ident)
                if len(candidates) > 1:
                    raise PageNotFound(
                        f"{ident!r} matches {len(candidates)} sessions: give more of the id"
                    )
                raise PageNotFound(f"unknown session {ident!r}")
        return found

    def session(self, ident: str, query: dict[str, list[str]]) -> Response:
        self._caught_up()
        found = self._find(ident)
        with self.db.read() as conn:
            spans = spans_of(conn, found.session_id)
            notes = list_annotations(conn, session_id=found.session_id)
            found.label = newest_labels(conn, [found.session_id]).get(found.session_id)
        tree = span_tree(spans)
        # verdict_reason / verdict_spans arrive with the verdict work (issue 16); shown once
        # the projection has them, never made up here.
        reason = getattr(found, "verdict_reason", None)
        verdict_spans = set(getattr(found, "verdict_spans", None) or [])
        return self._render(
            "session.html",
            title=(found.title or found.session_id).strip().splitlines()[0][:80]
            if (found.title or "").strip()
            else found.session_id,
            nav="sessions",
            s=found,
            tokens=_total_tokens(found),
            duration=_duration(found.started_at, found.ended_at),
            tree=tree,
            spans=len(spans),
            # A small tree opens whole; a large one opens its turns and the way to failures.
            open_all=len(spans) <= OPEN_ALL_SPANS,
            failed=sum(1 for x in spans if x.outcome in ("failure", "blocked")),
            notes=notes,
            verdict_reason=reason,
            verdict_spans=verdict_spans,
            message=_one(query, "annotated"),
            error=None,
            next_url=None,
        )

    def annotate(self, ident: str, form: dict[str, list[str]]) -> Response:
        label = _one(form, "label") or ""
        skill = _one(form, "skill")
        span_id = _one(form, "span")
        note = (form.get("note") or [""])[-1]
        back = _one(form, "next")
        self._caught_up()
        found = self._find(ident)
        try:
            added = add_annotation(
                self.db,
                found.session_id,
                label,
                author=getpass.getuser(),
                note=note,
                skill=skill,
                span_id=span_id,
            )
        except AnnotationRefused as exc:
            raise BadRequest(str(exc)) from exc
        target = f"/session/{quote(found.session_id)}?annotated={added.annotation_id}"
        if back is not None and back.startswith("/") and not back.startswith("//"):
            target = back
        return Response(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": target})

    # --- skills --------------------------------------------------------------------------

    def skills(self, query: dict[str, list[str]]) -> Response:
        self._caught_up()
        with self.db.read() as conn:
            found = skills_overview(conn)
        return self._render("skills.html", title="Skills", nav="skills", skills=found)

    def _state(self, skill: str) -> SkillState:
        return fold(skill, EventLog(self.db).read_stream(skill_stream(skill)))

    def skill(self, name: str, query: dict[str, list[str]]) -> Response:
        self._caught_up()
        with self.db.read() as conn:
            report: SkillReport | None = skill_report(conn, name)
            if report is None:
                raise PageNotFound(f"no session loaded skill {name!r}")
            sessions = skill_sessions(conn, name)
            runs = eval_runs(conn, name)
            timeline = lineage(conn, name)
            state = self._state(name)
        policy = bandit_policy(self.db)
        rows = [
            charts.Interval(
                label=f"{v.tag}{' (champion)' if v.content_hash == report.champion else ''}",
                k=v.verdicts["success"].k,
                n=v.verdicts["success"].n,
                share=v.verdicts["success"].share,
                low=v.verdicts["success"].low,
                high=v.verdicts["success"].high,
                css="s-champion" if v.content_hash == report.champion else "s-version",
            )
            for v in report.versions
        ]
        tag_of = {v.content_hash: v.tag for v in report.versions}
        over_time = self._success_over_time(sessions, tag_of)
        matrix = self._eval_matrix(runs, report)
        ab = self._ab(state, policy) if state.versions else None
        return self._render(
            "skill.html",
            title=f"Skill {name}",
            nav="skills",
            report=report,
            champion_tag=tag_of.get(report.champion or ""),
            intervals=charts.intervals(rows, f"success of {name} per version"),
            over_time=over_time,
            matrix=matrix,
            ab=ab,
            timeline=[(e, lineage_detail(e)) for e in timeline],
            baseline=getattr(report, "baseline", None),
            unlabelled=sum(1 for s in sessions if s.label is None),
        )

    @staticmethod
    def _success_over_time(sessions: list[Any], tag_of: dict[str, str]) -> Markup | None:
        """Verdict success per ISO week (local time) and version, with 95 % intervals."""
        weeks: dict[str, dict[str, list[int]]] = {}
        for s in sessions:
            moment = parse_stored(s.started_at)
            if moment is None or s.version_hash is None or s.verdict not in COUNTED:
                continue  # unfinished and no verdict are in no success rate (verdict.COUNTED)
            year, week, _ = shown(moment, False).isocalendar()
            key = f"{year}-W{week:02d}"
            tag = tag_of.get(s.version_hash, "v?")
            cell = weeks.setdefault(key, {}).setdefault(tag, [0, 0])
            cell[1] += 1
            cell[0] += s.verdict == "success"
        if not weeks:
            return None
        order = sorted(weeks)
        tags = sorted({t for w in weeks.values() for t in w}, key=lambda t: (len(t), t))
        series = []
        for i, tag in enumerate(tags):
            points: list[charts.Interval | None] = []
            for w in order:
                counts = weeks[w].get(tag)
                if counts is None:
                    points.append(None)
                    continue
                share = wilson(counts[0], counts[1])
                points.append(
                    charts.Interval(tag, counts[0], counts[1], share.share, share.low, share.high)
                )
            series.append(charts.Line(tag, _AGENT_CSS[i % len(_AGENT_CSS)], points))
        legend = charts.legend([charts.Series(s.name, s.css, []) for s in series])
        return Markup(charts.lines(order, series, "success per week and version") + legend)

    @staticmethod
    def _eval_matrix(runs: list[Any], report: SkillReport) -> dict[str, Any] | None:
        """The newest run of each version: cases (rows) × versions (columns)."""
        newest: dict[str, Any] = {}
        for run in runs:  # newest first
            newest.setdefault(run.version_hash, run)
        if not newest:
            return None
        columns = [v for v in report.versions if v.content_hash in newest]
        cases: list[tuple[str, str]] = []
        cells: dict[tuple[str, str, str], Any] = {}
        for v in columns:
            for c in newest[v.content_hash].cases:
                if (c.suite, c.case) not in cases:
                    cases.append((c.suite, c.case))
                cells[(c.suite, c.case, v.content_hash)] = c
        return {
            "columns": [(v.tag, v.content_hash, newest[v.content_hash]) for v in columns],
            "cases": cases,
            "cells": cells,
        }

    @staticmethod
    def _ab(state: SkillState, policy: BanditPolicy) -> dict[str, Any]:
        """The store's view: roles and counts (as ``skill versions --json``), and the running
        test's P(challenger better) after each of its executions."""
        report: VersionsJson = versions_json(state, None)
        curve: list[tuple[int, float]] = []
        decision = decide_state(state, policy)
        chart = None
        if state.experiment and state.champion and state.challenger:
            chosen = policy.decision()
            counts = {state.champion: [0, 0], state.challenger: [0, 0]}
            run = sorted(
                (
                    e
                    for e in state.executions.values()
                    if e.experiment_id == state.experiment
                    and e.outcome is not None
                    and e.version_hash in counts
                ),
                key=lambda e: e.position,
            )
            for i, e in enumerate(run, 1):
                cell = counts[e.version_hash]
                cell[0] += 1
                cell[1] += e.outcome == "success"
                d = decide(
                    ArmStats(*counts[state.champion]), ArmStats(*counts[state.challenger]), chosen
                )
                curve.append((i, d.statistic["p_challenger_better"]))
            if curve:
                chart = charts.probability(
                    curve, chosen.promote_bar, chosen.retire_bar, "P(challenger better)"
                )
        return {"report": report, "decision": decision, "chart": chart, "executions": len(curve)}

    # --- labelling queue -----------------------------------------------------------------

    def queue(self, query: dict[str, list[str]]) -> Response:
        skill = _one(query, "skill")
        self._caught_up()
        with self.db.read() as conn:
            if skill is None:
                overview = skills_overview(conn)
                counts = [
                    (s.skill, sum(1 for x in skill_sessions(conn, s.skill) if x.label is None))
                    for s in overview
                ]
                return self._render(
                    "queue.html", title="Label", nav="queue", skill=None, counts=counts
                )
            pending = [s for s in skill_sessions(conn, skill) if s.label is None]
            if not pending and not skill_sessions(conn, skill):
                raise PageNotFound(f"no session loaded skill {skill!r}")
            views = {s.session_id: find_session(conn, s.session_id) for s in pending[:PAGE_SIZE]}
            tag_of = {v.version_hash: v.name for v in versions(conn, skill)}
        return self._render(
            "queue.html",
            title=f"Label {skill}",
            nav="queue",
            skill=skill,
            pending=pending,
            views=views,
            tag_of=tag_of,
            shown_count=min(len(pending), PAGE_SIZE),
            back=f"/queue?skill={quote(skill)}",
            datetime=datetime,
        )
