"""Derivation: the captured records of one session → a session summary and a span tree.

Pure and deterministic: the same records and the same ``DERIVER_VERSION`` give
byte-identical output, ids included. A record the deriver cannot make sense of becomes a
``DeriveErrorRecorded``, never an exception.
"""

from __future__ import annotations

import msgspec

from ..events.types import DeriveErrorRecorded, SessionDerived, SpanDerived, TokenUsage
from ._ending import mark_ending
from ._ids import session_id
from ._input import Record, SourceLines, records
from ._results import call_results
from ._runners import settle_hidden
from ._skills import (
    content_hash,
    injected_body,
    normalize_skill_body,
    skill_content_hash,
    strip_frontmatter,
)
from ._summary import Summary
from ._title import title_line
from ._tree import SpanTree
from .claude import derive_claude, is_session
from .codex import derive_codex
from .copilot import derive_copilot
from .gemini import derive_gemini
from .gemini import is_session as is_gemini_session

# Bump whenever a change to the deriver changes its output: sessions derived by an older
# version are then re-derived (``skillopsctl rederive``, and the daemon at start).
# 2: Claude subagents from agent_progress, titles from summaries of this session and plan
# headings, sibling-cancelled calls not run, skills that never loaded, slash commands,
# input tokens including cached input, one skill-body normalization (masked, trailer-free).
# 3: Codex tokens survive compaction, router errors classified, a long-running command owns
# its exit; the facts the verdict reads at a session's end (_ending.py).
# 4: every TOOL and SKILL span carries its agent-neutral kind (``skillops.tool.kind``).
# 5: Gemini CLI and Copilot CLI sessions; their tool names in the kinds table and the ending
# facts.
# 6: Claude Code's own refusal of a call ("<tool_use_error>Blocked: …") is blocked, not failure.
# 7: a subagent known only by its Task result counts its final response's usage (once);
# every session says what its token figures cover when not every response's own usage.
# 8: Claude Code responses carry the part of their cache writes kept for an hour
# (``skillops.usage.cache_creation_1h.input_tokens``), which is priced higher.
# 9: the verdict's facts and reasons: shell commands read by a parser (tree-sitter), the
# deciding command, edits keyed by file across tools, no-op edits, bookkeeping calls, how the
# last turn ended (answered / empty / pending / silent); subagent and auto-mode permission
# denials and Gemini CLI's workspace and policy refusals are blocked.
# 10: a subagent's final response is matched by its request figures (a mirror caught mid-stream
# takes the result's count) and keyed by its spawning call (a resumed agent counts per call).
# 11: a reason names a turn by the number its span is named by (``CHAIN turn 7``), built-in
# commands counted, as the tree and the ``turns`` figure count them.
# 12: Gemini CLI responses say which part of their output was thinking
# (``skillops.usage.reasoning_tokens``), for usage reports that show it as ccusage does.
# 13: a skill loaded by reading its SKILL.md (Codex, Copilot CLI, Gemini CLI) carries the folder
# it was read from (``skill.directory``), as Claude Code's loads do: two projects' skills of
# one name are told apart by it (projections.skill_folders).
# 14: a test or lint run whose exit status a pipe, a ``;`` or an ``|| true`` hid is judged by
# its own summary in the output (failure, success, or unknown when it says neither); a run is
# keyed by its runner, and a failed run is resolved only by a pass covering what failed (the
# same or wider targets, no narrower selection, or the failing tests named); a pipeline is
# named by its last stage that is not a filter (``go test | tail`` is a ``go test``).
# 15: more runners are read (``python -m unittest``, ``bundle exec rspec``, ``rails test``,
# ``./gradlew test``, ``bazel test``, ``ctest``, ``mise exec --``), and a build whose status only
# a pipe hid (``cargo build | tail``, ``go build``, ``make``, ``npm run build``, ``docker
# build``, a compiler) is judged by its output like a test run: a failure, a pass, or unknown,
# never the pipe's success; ``a && b 2>&1 | c`` pipes only ``b`` (tree-sitter reads it as
# ``(a && b) | c``); a piped Python program whose output ends in a traceback failed; a call of
# unknown outcome gets ``skillops.turns_from_end`` (it ran: an interrupt of its turn stopped work).
# 16: a skill Claude Code loaded with its ``$ARGUMENTS`` replaced by what the user typed (or
# the Skill call's ``args``) gets the placeholder back: one file is one version, and the
# user's words are never stored as a skill body (review H1).
# 17: a shell call is read from its whole command, not from the clipped attribute (review H4).
# 18: a line holding JSON Python will not read (an integer of more than 4,300 digits) is one
# unreadable record, not a failed derivation that left its whole session unshown (review K13);
# calls carry ``skillops.work_turns_from_end``: their turn's place among the turns that did
# work, so a closing "thanks" or a look does not hide a failure before it (review K12).
DERIVER_VERSION = 18

_TOKEN_ATTRIBUTES = (
    ("input", "gen_ai.usage.input_tokens"),
    ("output", "gen_ai.usage.output_tokens"),
    ("cache_read", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_creation", "gen_ai.usage.cache_creation.input_tokens"),
)


class Derivation(msgspec.Struct, frozen=True):
    """One derivation of one session: its summary, spans and the records it could not read."""

    session: SessionDerived
    spans: list[SpanDerived]
    errors: list[DeriveErrorRecorded]
    # False when the files hold no conversation (a Claude file of only summary records).
    is_session: bool = True
    # The normalized skill bodies the session loaded, by content hash (for SkillVersionCreated).
    bodies: dict[str, str] = {}


def _tokens(spans: list[SpanDerived], reported: TokenUsage | None = None) -> TokenUsage:
    """The responses' usage summed; a count no response reported comes from ``reported``."""
    totals: dict[str, int | None] = {name: None for name, _ in _TOKEN_ATTRIBUTES}
    for span in spans:
        if span.kind != "LLM":
            continue
        for name, attribute in _TOKEN_ATTRIBUTES:
            value = span.attributes.get(attribute)
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = (totals[name] or 0) + value
    if reported is not None:
        for name, _ in _TOKEN_ATTRIBUTES:
            if totals[name] is None:
                totals[name] = getattr(reported, name)
    return TokenUsage(**totals)


def derive_session(
    agent: str,
    native_id: str,
    sources: list[SourceLines],
    *,
    deriver_version: int = DERIVER_VERSION,
) -> Derivation:
    """Derive one session from the captured lines of its files.

    ``sources`` are the session's files; for Claude Code the main file and its subagent files,
    for Codex the session's own rollout and those of the threads it spawned.
    """
    sid = session_id(agent, native_id)
    tree = SpanTree(sid)
    summary = Summary()
    ordered = sorted(sources, key=lambda s: (s.session != native_id, s.path, s.source_id))
    decoded: list[tuple[SourceLines, list[Record]]] = []
    unreadable = []
    for source in ordered:
        recs, bad = records(source)
        decoded.append((source, recs))
        unreadable.extend(bad)
    if agent == "codex":
        derive_codex(
            tree,
            summary,
            native_id,
            [(s.session, s.parent_session, recs) for s, recs in decoded],
        )
    elif agent == "copilot":
        derive_copilot(tree, summary, [(s.path, recs) for s, recs in decoded])
    elif agent == "gemini":
        gemini_files = [(s.path, recs) for s, recs in decoded]
        if not is_gemini_session(gemini_files):
            return Derivation(
                session=SessionDerived(sid, agent, native_id, deriver_version),
                spans=[],
                errors=[],
                is_session=False,
            )
        derive_gemini(tree, summary, native_id, gemini_files)
    else:
        files = [(s.path, recs) for s, recs in decoded]
        if not is_session(files):
            return Derivation(
                session=SessionDerived(sid, agent, native_id, deriver_version),
                spans=[],
                errors=[],
                is_session=False,
            )
        derive_claude(tree, summary, files)
    settle_hidden(tree)
    mark_ending(tree)
    spans = tree.events(deriver_version)
    errors = [
        DeriveErrorRecorded(
            session_id=sid,
            deriver_version=deriver_version,
            source_id=u.source_id,
            offset=u.offset,
            message=u.message,
        )
        for u in unreadable
    ] + [
        DeriveErrorRecorded(
            session_id=sid,
            deriver_version=deriver_version,
            source_id=record.source_id,
            offset=record.offset,
            message=message,
        )
        for record, message in summary.errors
    ]
    parent = next((s.parent_session for s in ordered if s.session == native_id), "") or None
    first = summary.first_prompt or summary.first_command or ""
    title = summary.title or title_line(first)
    session = SessionDerived(
        session_id=sid,
        agent=agent,
        native_session_id=native_id,
        deriver_version=deriver_version,
        title=title,
        cwd=summary.cwd,
        started_at=summary.started_at,
        ended_at=summary.ended_at,
        turns=sum(1 for s in spans if s.kind == "CHAIN" and s.parent_span_id is None),
        tools=sum(1 for s in spans if s.kind == "TOOL"),
        skills=sorted(summary.skills),
        tokens=_tokens(spans, summary.tokens),
        tokens_note=summary.tokens_note,
        span_ids=[s.span_id for s in spans],
        parent_session_id=parent,
    )
    return Derivation(session=session, spans=spans, errors=errors, bodies=dict(tree.bodies))


__all__ = [
    "DERIVER_VERSION",
    "Derivation",
    "SourceLines",
    "call_results",
    "content_hash",
    "derive_session",
    "injected_body",
    "normalize_skill_body",
    "session_id",
    "skill_content_hash",
    "strip_frontmatter",
]
