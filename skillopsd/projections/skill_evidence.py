"""What an editing agent needs to improve a skill, compact: per session that went wrong, the
first prompt, the verdict and why, the calls that failed with the first lines of their
errors, the labels with their notes, and the eval cases it failed with their details."""

from __future__ import annotations

import apsw
import msgspec

from .annotations import list_annotations
from .session_views import SpanView, find_session, spans_of
from .skill_views import eval_runs, skill_sessions, versions

# How many lines of a failing call's error, and of a prompt, the evidence keeps.
ERROR_LINES = 3
PROMPT_CHARS = 500
ERROR_ATTRIBUTES = ("skillops.result.error", "error.message", "exception.message")


class FailedCall(msgspec.Struct):
    name: str
    error: str
    # One of the spans the session's verdict rests on (``verdict_spans``), when known.
    deciding: bool = False


class LabelNote(msgspec.Struct):
    label: str
    note: str
    author: str


class FailedCase(msgspec.Struct):
    suite: str
    case: str
    run_id: str
    details: list[str]


class SessionEvidence(msgspec.Struct):
    session_id: str
    agent: str
    version: str | None
    started_at: str | None
    first_prompt: str
    verdict: str | None
    verdict_reason: str | None
    failing_calls: list[FailedCall]
    labels: list[LabelNote]
    failed_cases: list[FailedCase]

    @property
    def failed(self) -> bool:
        bad = any(x.label in ("bad", "blocked") for x in self.labels)
        return self.verdict not in ("success", None) or bad or bool(self.failed_cases)


def _first_lines(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    more = f" (+{len(lines) - ERROR_LINES} lines)" if len(lines) > ERROR_LINES else ""
    return "\n".join(lines[:ERROR_LINES]) + more


def _prompt(spans: list[SpanView]) -> str:
    for span in spans:
        if span.kind == "CHAIN" and span.parent_span_id is None:
            value = span.attributes.get("gen_ai.prompt")
            if isinstance(value, str) and value.strip():
                return value[:PROMPT_CHARS]
    return ""


def _failing_calls(spans: list[SpanView], deciding: set[str]) -> list[FailedCall]:
    out = []
    for span in spans:
        decides = span.span_id in deciding
        failed = span.kind in ("TOOL", "SKILL", "AGENT") and span.outcome in ("failure", "blocked")
        if not failed and not decides:
            continue
        error = next(
            (
                v
                for k in ERROR_ATTRIBUTES
                if isinstance(v := span.attributes.get(k), str) and v.strip()
            ),
            span.outcome or "outcome unknown",
        )
        tool = span.attributes.get("gen_ai.tool.name")
        name = tool if isinstance(tool, str) else span.name
        out.append(FailedCall(name, _first_lines(error), decides))
    # The calls the verdict rests on first, then the others in the order they ran.
    return sorted(out, key=lambda c: not c.deciding)


def skill_evidence(
    conn: apsw.Connection, skill: str, *, failures: bool = False, limit: int | None = None
) -> list[SessionEvidence]:
    """Evidence per session that loaded ``skill``, newest first (only failures if asked)."""
    tags = {v.version_hash: v.name for v in versions(conn, skill)}
    # The newest run that graded each session says which cases it failed.
    failed_cases: dict[str, list[FailedCase]] = {}
    seen: set[str] = set()
    for run in eval_runs(conn, skill):
        for session in run.graded_sessions:
            if session in seen:
                continue
            seen.add(session)
            for case in run.cases:
                bad = [r for r in case.results if r.session_id == session and not r.passed]
                if bad:
                    failed_cases.setdefault(session, []).append(
                        FailedCase(
                            suite=case.suite,
                            case=case.case,
                            run_id=run.run_id,
                            details=[
                                f"grader {r.index} {r.name or r.type}: {r.detail}" for r in bad
                            ],
                        )
                    )
    labels: dict[str, list[LabelNote]] = {}
    for a in list_annotations(conn, skill=skill):
        if not a.retracted:
            labels.setdefault(a.session_id, []).append(LabelNote(a.label, a.note, a.author))
    out = []
    for s in skill_sessions(conn, skill):
        view = find_session(conn, s.session_id)
        if view is None:
            continue
        spans = spans_of(conn, s.session_id)
        reason = view.verdict_reason
        deciding = view.verdict_spans
        evidence = SessionEvidence(
            session_id=s.session_id,
            agent=s.agent,
            version=tags.get(s.version_hash or ""),
            started_at=s.started_at,
            first_prompt=_prompt(spans),
            verdict=view.verdict,
            verdict_reason=reason if isinstance(reason, str) and reason else None,
            failing_calls=_failing_calls(spans, set(deciding)),
            labels=labels.get(s.session_id, []),
            failed_cases=failed_cases.get(s.session_id, []),
        )
        if failures and not evidence.failed:
            continue
        out.append(evidence)
        if limit is not None and len(out) >= limit:
            break
    return out
