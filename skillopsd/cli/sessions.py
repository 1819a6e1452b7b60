"""``skillopsctl sessions`` and ``session show``: what was derived from the transcripts."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime

import apsw
import click
import msgspec

from .._defaults import DEFAULT_SETTLE_SECONDS
from .._params import count_range
from ..events import Database
from ..projections.annotations import newest_labels
from ..projections.copies import copies
from ..projections.session_views import (
    ForgottenView,
    SessionView,
    SpanView,
    forgotten_of,
    forgotten_sessions,
    list_sessions,
    spans_of,
)
from ..projections.usage import SessionCost, session_costs, span_costs
from ..projections.verdict import RUNNING, SUMMARY, VERDICTS
from ._app import (
    AgentChoice,
    AppContext,
    NotFound,
    cli,
    db_option,
    json_option,
    pass_app,
    team_option,
)
from ._empty import why_empty
from ._lookup import lookup_session
from ._output import (
    compact,
    compact_usd,
    cut,
    echo,
    emit_json,
    emit_json_array,
    glyph,
    number,
    plural,
    say,
    squeeze,
    table,
    terminal_width,
    unique_prefix,
    usd,
)
from ._reason import first_reason
from ._time import parse_stored, shown, stamps, utc_option, window_options, zone_label

_MARKS = {"success": ("✓", "+"), "failure": ("✗", "x"), "blocked": ("⊘", "!")}


def _mark(outcome: str | None) -> str:
    """A call's outcome mark (``+``, ``x``, ``!`` where the terminal cannot write ✓ ✗ ⊘)."""
    marks = _MARKS.get(outcome or "")
    return glyph(*marks) if marks is not None else "?"


_PREVIEW_KEYS = (
    "cmd",
    "command",
    "file_path",
    "path",
    "pattern",
    "query",
    "url",
    "skill",
    "description",
    "prompt",
    "message",
)


def _preview(span: SpanView) -> str:
    """What a call was about, in a few words (its command, file, query…)."""
    raw = span.attributes.get("gen_ai.tool.call.arguments")
    if not isinstance(raw, str):
        return ""
    try:
        args = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        args = raw
    text = ""
    if isinstance(args, dict):
        for key in _PREVIEW_KEYS:
            value = args.get(key)
            if isinstance(value, list):
                value = " ".join(map(str, value))
            if isinstance(value, str) and value.strip():
                text = value
                break
    elif isinstance(args, str):
        text = args
    text = " ".join(text[:4000].split())  # no line is wider than that
    return f"  {text}" if text else ""  # cut to the line's room where it is shown


def _forgotten_line(f: ForgottenView) -> str:
    what = {"source": "a file of it forgotten", "retention": "forgotten by retention"}
    return (
        f"{what.get(f.scope, 'forgotten')} {f.forgotten_at[:19].replace('T', ' ')}"
        f" by {f.author or '?'}: {f.reason} ({f.events} events erased)"
    )


def _outcomes(s: SessionView) -> str:
    """Call outcomes, leaving out kinds that did not occur (``70✓ 3✗``; ``-`` for none)."""
    o = s.outcomes
    parts = [
        f"{n:,}{_mark(outcome)}"
        for n, outcome in (
            (o.success, "success"),
            (o.failure, "failure"),
            (o.blocked, "blocked"),
            (o.unknown, None),
        )
        if n
    ]
    return " ".join(parts) or "-"


def _total_tokens(s: SessionView) -> int | None:
    """Input (cached input included, as OpenTelemetry GenAI counts it) plus output."""
    t = s.tokens
    if t.input is None and t.output is None:
        return None
    return (t.input or 0) + (t.output or 0)


def _tokens_cell(s: SessionView) -> str:
    total = _total_tokens(s)
    return compact(total) + (_NOTED if s.tokens.note and total is not None else "")


_SKILLS_WIDTH = 12
# Marks a token total that is not every response's own usage (SessionView.tokens.note).
_NOTED = "*"


def _cost(cost: SessionCost | None) -> str:
    """USD over the priced responses; ``+`` when some had no price, ``-`` when none had one."""
    return "-" if cost is None else compact_usd(cost.usd, unpriced=cost.unpriced)


def _skills_cell(skills: list[str], width: int) -> str:
    """Whole skill names that fit in ``width``, then ``+N`` for the rest (``-`` for none)."""
    if not skills:
        return "-"
    shown_names: list[str] = []
    for i, name in enumerate(skills):
        rest = len(skills) - i - 1
        candidate = ",".join([*shown_names, name]) + (f" +{rest}" if rest else "")
        if len(candidate) > width:
            break
        shown_names.append(name)
    if not shown_names:
        return cut(skills[0], width - 3) + f" +{len(skills) - 1}" if len(skills) > 1 else skills[0]
    rest = len(skills) - len(shown_names)
    return ",".join(shown_names) + (f" +{rest}" if rest else "")


_SESSION_ID_WIDTH = 8  # like a short git hash; ``session show`` takes any unique prefix


def _title_cell(s: SessionView) -> str:
    title = (s.title or "-").strip() or "-"
    if s.copy_of is None:
        return title
    return f"(copy of {s.copy_of[:_SESSION_ID_WIDTH]}) {title}"


@cli.command("sessions")
@db_option
@team_option
@click.option("--agent", type=AgentChoice(), default=None)
@click.option("--skill", default=None, help="Only sessions that loaded this skill.")
@click.option(
    "--verdict",
    type=click.Choice([*VERDICTS, RUNNING, "none"]),
    default=None,
    help="Only sessions with this verdict (none: no verdict; running: unfinished and still"
    " being written). " + SUMMARY,
)
@window_options("sessions")
@click.option(
    "--search",
    metavar="TEXT",
    default=None,
    help="Only sessions whose title or a prompt contains TEXT (ASCII case ignored). With"
    " --team, only sessions whose machine sent their text (--content all): a line says how"
    " many could not match.",
)
@click.option("--limit", type=count_range(), default=None, help="At most N sessions.")
@utc_option
@click.option(
    "--forgotten",
    is_flag=True,
    help="List the forgotten sessions (forget, retention) instead: when, by whom, why.",
)
@json_option
@pass_app
def sessions_command(
    app: AppContext,
    agent: str | None,
    skill: str | None,
    verdict: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    limit: int | None,
    utc: bool,
    forgotten: bool,
    as_json: bool,
) -> None:
    """Captured sessions, newest first, with their outcomes and verdicts.

    Times are local (the zone is in the header) unless --utc; tokens are input (cached input
    included) plus output, marked * where they are not every response's own usage (Copilot's
    per-run totals, subagents known only by their final response: session show says what they
    cover); the session column is a prefix of the id that session show takes. JSON output has
    every field in full, times in UTC. Forgotten sessions are not listed (their
    rows are gone); --forgotten lists them. A copy of another session (a resumed or forked
    one repeating its responses, the same ids) is listed too, its title marked (copy of ID):
    skill figures, the gate and A/B tests count that conversation once.
    """
    db = app.db()
    app.caught_up()
    if forgotten:
        with db.read() as conn:
            tombstones = forgotten_sessions(conn)[:limit]
        if as_json:
            emit_json_array(tombstones)
            return
        if not tombstones:
            echo("no forgotten sessions")
            return
        at, zone = stamps([f.forgotten_at for f in tombstones], utc)
        table(
            [
                [
                    when,
                    f.session_id,
                    f.scope,
                    f.author,
                    str(f.events),
                    f.reason.replace("\n", " "),
                ]
                for f, when in zip(tombstones, at, strict=True)
            ],
            [f"forgotten ({zone})", "session", "scope", "by", "events", "reason"],
            flex=5,
            text=(3, 5),
        )
        return
    with db.read() as conn:
        found = list_sessions(
            conn,
            agent=agent,
            skill=skill,
            verdict="unfinished" if verdict == RUNNING else verdict,
            since=since,
            until=until,
            search=search,
            limit=None if verdict in ("unfinished", RUNNING) else limit,
        )
        hidden = len({f.session_id for f in forgotten_sessions(conn, hidden_only=True)})
        labels = newest_labels(conn, [s.session_id for s in found])
        costs = session_costs(conn, [s.session_id for s in found])
        copied = copies(conn, [s.session_id for s in found])
    for s in found:
        s.label = labels.get(s.session_id)
        s.cost = costs.get(s.session_id)
        s.copy_of = copied.get(s.session_id)
    if app.team:
        with db.read() as conn:
            _set_machines(conn, found)
    show_running(db, found)
    if verdict in ("unfinished", RUNNING):
        found = [s for s in found if s.verdict == verdict][:limit]
    empty = None
    if not found and not as_json:
        with db.read() as conn:
            empty = why_empty(
                conn,
                "sessions",
                since=since,
                until=until,
                agent=agent,
                skill=skill,
                verdict=verdict,
                utc=utc,
            )
    unsearched = ""
    if app.team and search:
        unsearched = _unsearched(db)
    if as_json:
        emit_json_array(found)
        if unsearched:
            echo(f"({unsearched})", err=True)
        return
    if unsearched:
        if not found:
            say(f"no sessions: {unsearched}")
            return
        echo(f"({unsearched})", err=True)
    if empty is not None:
        say(empty)
        if hidden:
            echo(f"({hidden} forgotten sessions not shown: sessions --forgotten lists them)")
        return
    starts: list[datetime | None] = []
    for s in found:
        moment = parse_stored(s.started_at)
        starts.append(shown(moment, utc) if moment is not None else None)
    zone = zone_label([m for m in starts if m is not None] or [shown(datetime.now(UTC), utc)])
    short = unique_prefix((s.session_id for s in found), _SESSION_ID_WIDTH)
    machine = [[_machine_cell(s)] if app.team else [] for s in found]
    shift = 1 if app.team else 0
    table(
        [
            [
                m.strftime("%Y-%m-%d %H:%M") if m is not None else "-",
                *where,
                s.agent,
                s.session_id[:short],
                s.verdict or "-",
                s.label or "-",
                _outcomes(s),
                _tokens_cell(s),
                _cost(s.cost),
                _skills_cell(s.skills, _SKILLS_WIDTH),
                _title_cell(s),
            ]
            for s, m, where in zip(found, starts, machine, strict=True)
        ],
        [
            f"started ({zone})",
            *(["machine"] if app.team else []),
            "agent",
            "session",
            "verdict",
            "label",
            "calls",
            "tokens",
            "cost",
            "skills",
            "title",
        ],
        caps={8 + shift: _SKILLS_WIDTH},
        flex=9 + shift,
        text=(8 + shift, 9 + shift),
        key=2 + shift,
        # The title gives way first, down to a dozen characters; then, for it to stay
        # readable, skills, cost and tokens make room, in that order (session show has all).
        optional=(6 + shift, 7 + shift, 8 + shift),
        min_flex=12,
    )
    if any(s.tokens.note and _total_tokens(s) is not None for s in found):
        echo(
            f"({_NOTED} tokens: not every response's own usage; session show says what they cover)"
        )
    if hidden:
        echo(f"({hidden} forgotten sessions not shown: sessions --forgotten lists them)")


def _set_machines(conn: apsw.Connection, found: list[SessionView]) -> set[str]:
    """Team views: the machine each session came from (the replica's merge record); returns
    the sessions whose message text the server does not hold."""
    from ..team.views import session_origins

    origins = session_origins(conn, [s.session_id for s in found])
    for s in found:
        origin = origins.get(s.session_id)
        if origin is not None:
            s.machine, s.machine_id = origin.label, origin.machine
    return {sid for sid, origin in origins.items() if origin.content != "exact"}


def _unsearched(db: Database) -> str:
    """What ``--team … --search`` cannot see: the sessions whose title and prompts the
    server does not hold ("" when it holds every session's)."""
    from ..team.views import sessions_without_text

    with db.read() as conn:
        count, machines = sessions_without_text(conn)
    if not count:
        return ""
    return (
        f"--search reads titles and prompts, which the team server does not hold for"
        f" {plural(count, 'session')} of {plural(machines, 'machine')} (synced with --content"
        " derived or none): those cannot match"
    )


def _machine_cell(s: SessionView) -> str:
    if s.machine_id is None:
        return "-"
    return f"{cut(s.machine or '-', 16)} {s.machine_id[:6]}"


def show_running(db: Database, found: list[SessionView]) -> None:
    """An unfinished session still being written is shown as running, not judged.

    Running means not settled, as the daemon's skill sync means it: its newest line was captured
    less than the settle time ago (300 s) and the agent has not written its end; a session whose
    own last timestamp is older than that has settled whenever it was captured. The projection
    cannot say this (it never reads the clock): the command does, when it shows the verdict.
    """
    now = datetime.now(UTC)
    recent = []
    for s in found:
        ended = parse_stored(s.ended_at) if s.verdict == "unfinished" else None
        if ended is not None and (now - ended).total_seconds() < DEFAULT_SETTLE_SECONDS:
            recent.append(s)
    if not recent:
        return
    from ..versions.executions import settled  # only when a session may still be running

    done = settled(db, [s.session_id for s in recent], now, DEFAULT_SETTLE_SECONDS)
    for s in recent:
        if s.session_id not in done:
            s.verdict = RUNNING
            s.verdict_reason = (
                f"running: still being written (unfinished so far: {s.verdict_reason})"
                if s.verdict_reason
                else "running: still being written"
            )


@cli.group("session")
def session_group() -> None:
    """One session."""


def _tokens_detail(attributes: Mapping[str, object], cost: float | None) -> str:
    parts = []
    for key, label in (
        ("gen_ai.usage.input_tokens", "in"),
        ("gen_ai.usage.output_tokens", "out"),
    ):
        value = attributes.get(key)
        if isinstance(value, int):
            parts.append(f"{value:,} {label}")
    if parts:
        parts.append(usd(cost) if cost is not None else "no price")
    return f"  ({' / '.join(parts)})" if parts else ""


def _tree_lines(
    spans: list[SpanView],
    width: int,
    costs: Mapping[str, float | None],
    deciding: frozenset[str] = frozenset(),
) -> list[str]:
    children: dict[str | None, list[SpanView]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            call = span.kind in ("TOOL", "SKILL")
            mark = f"{_mark(span.outcome)} " if call else ""
            detail = _preview(span) if call else ""
            if span.kind == "SKILL":
                h = span.attributes.get("skill.content_hash")
                activation = span.attributes.get("skill.activation") or "?"
                detail = f"  [{activation}{' ' + str(h)[:12] if h else ''}]{detail}"
            elif span.kind == "LLM":
                detail = _tokens_detail(span.attributes, costs.get(span.span_id))
                if span.attributes.get("skillops.usage.source") == "tool_result":
                    detail += " from the Task result"
            elif span.kind == "TOOL" and span.attributes.get("skill.name"):
                detail = f"  (skill {span.attributes['skill.name']}){detail}"
            decided = "  ◀ verdict" if span.span_id in deciding else ""
            head = f"{'  ' * depth}{mark}{span.kind} {span.name}"
            lines.append(squeeze(head, detail, decided, width))
            if call and span.outcome in ("failure", "blocked"):
                indent = "  " * (depth + 1)
                # A run whose hidden status its output decided: the summary that decided it.
                why = first_reason(span.attributes.get("skillops.result.summary")) or first_reason(
                    span.attributes.get("skillops.result.error")
                )
                lines.append(squeeze(f"{indent}↳ ", why or "(no reason recorded)", "", width))
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return lines


def _when(session: SessionView, utc: bool) -> str:
    """Start → end in the reader's zone, and how long the session ran."""
    start, end = parse_stored(session.started_at), parse_stored(session.ended_at)
    moments = [shown(m, utc) if m is not None else None for m in (start, end)]
    known = [m for m in moments if m is not None]
    if not known:
        return "-"
    first, last = (m.strftime("%Y-%m-%d %H:%M:%S") if m is not None else "-" for m in moments)
    text = f"{first} → {last} {zone_label(known)}"
    if start is not None and end is not None:
        minutes = round((end - start).total_seconds() / 60)
        text += f" ({minutes} min)" if minutes < 120 else f" ({minutes / 60:.1f} h)"
    return text


def _session_tokens(session: SessionView) -> str:
    t = session.tokens
    parts = [
        f"{label} {value:,}"
        for label, value in (
            ("in", t.input),
            ("out", t.output),
            ("cache-read", t.cache_read),
            ("cache-write", t.cache_creation),
        )
        if value is not None
    ]
    return "  ".join(parts) or "-"


def _session_cost(cost: SessionCost | None) -> str:
    if cost is None:
        return "- (no model response reported tokens)"
    text = f"{usd(cost.usd)} over {cost.responses:,} model responses"
    if cost.unpriced:
        text += f", {cost.unpriced:,} without a price (not counted; skillopsctl status lists them)"
    return text


@session_group.command("show")
@db_option
@team_option
@click.argument("ident", metavar="ID")
@utc_option
@json_option
@pass_app
def show(app: AppContext, ident: str, utc: bool, as_json: bool) -> None:
    """The span tree of session ID (our id or the agent's, or a unique prefix of either).

    Calls are marked ✓ success, ✗ failure, ⊘ blocked, ? unknown; under a failed or blocked
    call, ↳ gives the first line of why. Times are local unless --utc.
    """
    db = app.db()
    app.caught_up()
    withheld = False
    with db.read() as conn:
        try:
            session: SessionView | None = lookup_session(conn, ident)
        except NotFound:
            session = None
        if session is not None:
            spans = spans_of(conn, session.session_id)
            tombstones = forgotten_of(conn, [session.session_id])
            session.cost = session_costs(conn, [session.session_id]).get(session.session_id)
            # Shown beside the spans, not in their attributes: the price of each model response
            # from the usage projection, not something derived from the transcript.
            costs = {k: usd_ for k, (usd_, _why) in span_costs(conn, session.session_id).items()}
        else:
            spans = []
            costs = {}
            # Imported here, the rare case: a plain ``session show`` need not load them.
            from ..derive import session_id
            from ..sources import STORES

            # A forgotten session is found by our id, a prefix of it, or the agent's id.
            candidates = [ident, *(session_id(agent, ident) for agent in sorted(STORES))]
            tombstones = forgotten_of(conn, candidates)
            if not tombstones:
                lookup_session(conn, ident)  # raises the lookup's own one-line answer
        if session is not None:
            session.label = newest_labels(conn, [session.session_id]).get(session.session_id)
            session.copy_of = copies(conn, [session.session_id]).get(session.session_id)
            if app.team:
                withheld = bool(_set_machines(conn, [session]))
    if session is not None:
        show_running(db, [session])
    if as_json:
        emit_json({"session": session, "spans": spans, "forgotten": tombstones, "costs": costs})
        return
    if session is None:
        echo(f"session   {tombstones[0].session_id}")
        for f in tombstones:
            say(f"          {_forgotten_line(f)}", indent=10)
        return
    width = terminal_width()
    title = (session.title or "-").strip().splitlines() or ["-"]
    say(f"session   {session.session_id} ({session.agent} {session.native_session_id})", indent=10)
    if app.team:
        say(f"machine   {session.machine or '-'} ({session.machine_id or 'unknown'})", indent=10)
        if withheld:
            say(
                "content   derived: the server holds no title, prompt, answer or tool"
                " argument of it (sync --content derived)",
                indent=10,
            )
    echo(f"title     {cut(title[0], max(20, width - 10))}")
    say(f"when      {_when(session, utc)}", indent=10)
    echo(f"cwd       {session.cwd or '-'}")  # a path is shown whole, to be copied
    if session.copy_of is not None:
        say(
            f"copy of   {session.copy_of}: its responses are that session's (resumed, forked or"
            " copied); skill figures, the gate and A/B tests count that one",
            indent=10,
        )
    say(
        f"verdict   {session.verdict or '-'}   label {session.label or '-'}"
        f"   calls {_outcomes(session)}",
        indent=10,
    )
    if session.verdict_reason:
        # Wrapped, not cut: the reason is the point of the line, its turn at its end (K7).
        why = session.verdict_reason.split(": ", 1)[-1]
        say(f"why       {why}", indent=10)
    elif session.verdict is None:
        # "-" must not read as "not looked at" (review K11): say what the rule lacked.
        say(
            "why       no verdict: no call has an outcome to judge the session by; your label"
            f" counts instead (skillopsctl annotate {session.session_id[:8]} --label good|bad)",
            indent=10,
        )
    say(f"turns     {number(session.turns)}   tools {number(session.tools)}", indent=10)
    say(f"skills    {', '.join(session.skills) or '-'}", indent=10)
    for f in tombstones:
        say(f"erased    {_forgotten_line(f)}", indent=10)
    say(f"tokens    {_session_tokens(session)}", indent=10)
    if session.tokens.note:
        for line in textwrap.wrap(f"({session.tokens.note})", max(20, width - 10)):
            echo(f"          {line}")
    say(f"cost      {_session_cost(session.cost)}", indent=10)
    echo()
    for line in _tree_lines(spans, width, costs, frozenset(session.verdict_spans)):
        echo(line)
