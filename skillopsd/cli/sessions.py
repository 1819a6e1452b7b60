"""``skillopsctl sessions`` and ``session show``: what was derived from the transcripts."""

from __future__ import annotations

import click
import msgspec

from ..projections.annotations import newest_labels
from ..projections.session_views import SessionView, SpanView, find_session, list_sessions, spans_of
from ._app import AppContext, NotFound, cli, db_option, json_option, pass_app
from ._output import emit_json, emit_json_array, table
from ._time import SINCE

_MARKS = {"success": "✓", "failure": "✗", "blocked": "⊘", None: "?"}
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
    text = " ".join(text.split())
    return f"  {text[:70]}{'…' if len(text) > 70 else ''}" if text else ""


def _outcomes(s: SessionView) -> str:
    o = s.outcomes
    return f"{o.success}✓ {o.failure}✗ {o.blocked}⊘ {o.unknown}?"


@cli.command("sessions")
@db_option
@click.option("--agent", type=click.Choice(["claude", "codex"]), default=None)
@click.option("--skill", default=None, help="Only sessions that loaded this skill.")
@click.option(
    "--verdict",
    type=click.Choice(["success", "failure", "blocked", "none"]),
    default=None,
    help="Only sessions with this verdict (none: no verdict).",
)
@click.option("--since", type=SINCE, default=None, help="Started since (7d, 12h, or ISO time).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N sessions.")
@json_option
@pass_app
def sessions_command(
    app: AppContext,
    agent: str | None,
    skill: str | None,
    verdict: str | None,
    since: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Captured sessions, newest first, with their outcomes and verdicts."""
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        found = list_sessions(
            conn, agent=agent, skill=skill, verdict=verdict, since=since, limit=limit
        )
        labels = newest_labels(conn, [s.session_id for s in found])
    for s in found:
        s.label = labels.get(s.session_id)
    if as_json:
        emit_json_array(found)
        return
    table(
        [
            [
                (s.started_at or "")[:16].replace("T", " "),
                s.agent,
                s.session_id,
                s.verdict or "-",
                s.label or "-",
                str(s.turns),
                _outcomes(s),
                ",".join(s.skills) or "-",
                (s.title or "").replace("\n", " ")[:60],
            ]
            for s in found
        ],
        ["started", "agent", "session", "verdict", "label", "turns", "calls", "skills", "title"],
    )


@cli.group("session")
def session_group() -> None:
    """One session."""


def _tree_lines(spans: list[SpanView]) -> list[str]:
    children: dict[str | None, list[SpanView]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            call = span.kind in ("TOOL", "SKILL")
            mark = f"{_MARKS.get(span.outcome, '?')} " if call else ""
            detail = _preview(span) if call else ""
            if span.kind == "SKILL":
                h = span.attributes.get("skill.content_hash")
                activation = span.attributes.get("skill.activation")
                detail = f"  [{activation}{' ' + str(h)[:12] if h else ''}]{detail}"
            elif span.kind == "LLM":
                t_in = span.attributes.get("gen_ai.usage.input_tokens")
                t_out = span.attributes.get("gen_ai.usage.output_tokens")
                if t_in is not None or t_out is not None:
                    detail = f"  ({t_in} in / {t_out} out)"
            elif span.kind == "TOOL" and span.attributes.get("skill.name"):
                detail = f"  (skill {span.attributes['skill.name']}){detail}"
            lines.append(f"{'  ' * depth}{mark}{span.kind} {span.name}{detail}")
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return lines


@session_group.command("show")
@db_option
@click.argument("ident", metavar="ID")
@json_option
@pass_app
def show(app: AppContext, ident: str, as_json: bool) -> None:
    """The span tree of session ID (our id or the agent's), outcomes marked."""
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        session = find_session(conn, ident)
        if session is None:
            raise NotFound(f"unknown session {ident!r} (see skillopsctl sessions)")
        spans = spans_of(conn, session.session_id)
        session.label = newest_labels(conn, [session.session_id]).get(session.session_id)
    if as_json:
        emit_json({"session": session, "spans": spans})
        return
    click.echo(f"session   {session.session_id} ({session.agent} {session.native_session_id})")
    click.echo(f"title     {(session.title or '-').splitlines()[0][:100]}")
    click.echo(f"when      {session.started_at} → {session.ended_at}")
    click.echo(f"cwd       {session.cwd or '-'}")
    click.echo(
        f"verdict   {session.verdict or '-'}   label {session.label or '-'}"
        f"   calls {_outcomes(session)}"
    )
    click.echo(f"skills    {', '.join(session.skills) or '-'}")
    t = session.tokens
    click.echo(
        f"tokens    in {t.input} out {t.output} cache-read {t.cache_read}"
        f" cache-write {t.cache_creation}"
    )
    click.echo()
    for line in _tree_lines(spans):
        click.echo(line)
