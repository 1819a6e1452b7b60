"""What graders see of one session, built from its derived summary and spans.

**Tool count**: one definition serves both ``maxTools`` (``behavior`` and
``tool_constraint``): the number of TOOL and SKILL spans, i.e. ``len(tool_sequence)``, a
subagent's calls included. Loading a skill is a call the agent made, so it counts.
"""

from __future__ import annotations

import msgspec

from ..derive._kinds import KIND_ATTRIBUTE
from ..projections.session_views import SessionView, SpanView
from ..projections.skill_views import duration_ms


class ToolCall(msgspec.Struct, frozen=True):
    """One call in start order: its span name, the agent's tool name and its kind."""

    name: str
    tool: str | None = None
    kind: str | None = None
    skill: str | None = None

    def is_(self, wanted: str) -> bool:
        """Whether ``wanted`` (an agent tool name, a skill name or a kind) names this call."""
        return wanted in (self.name, self.tool, self.kind, self.skill)


# Why a grader that needs message text does not judge a session read from a team server
# that holds no text of it (``--content derived``): withheld text is not an empty answer.
WITHHELD = "content withheld on the team server"


class Evidence(msgspec.Struct, frozen=True):
    """Per session: outcome, final message, calls, skills, counts, duration, prompt, label."""

    session_id: str
    agent: str
    outcome: str | None
    final_message: str
    tool_sequence: list[ToolCall]
    skills: list[str]
    turns: int
    duration_ms: int | None
    first_prompt: str = ""
    label: str | None = None
    # The case whose ``run`` task this session is a replay of (``eval replay``), if any.
    replay_case: str | None = None
    # Its message text (final message, prompts) did not reach the team server: graders and
    # case selection that read text cannot judge it.
    text_withheld: bool = False

    @property
    def tools(self) -> int:
        """The tool count (see the module docstring): ``len(tool_sequence)``."""
        return len(self.tool_sequence)


def build_evidence(
    session: SessionView,
    spans: list[SpanView],
    label: str | None,
    replay_case: str | None = None,
    *,
    text_withheld: bool = False,
) -> Evidence:
    """The evidence of ``session`` from its spans (in the deriver's order)."""
    by_id = {s.span_id: s for s in spans}
    order = {s.span_id: n for n, s in enumerate(spans)}
    calls = sorted(
        (s for s in spans if s.kind in ("TOOL", "SKILL")),
        key=lambda s: (s.start or "", order[s.span_id]),
    )
    sequence = []
    skills: list[str] = []
    for span in calls:
        tool = span.attributes.get("gen_ai.tool.name")
        kind = span.attributes.get(KIND_ATTRIBUTE)
        skill = span.attributes.get("skill.name")
        sequence.append(
            ToolCall(
                name=span.name,
                tool=tool if isinstance(tool, str) else None,
                kind=kind if isinstance(kind, str) else None,
                skill=skill if span.kind == "SKILL" and isinstance(skill, str) else None,
            )
        )
        if span.kind == "SKILL" and isinstance(skill, str) and skill not in skills:
            skills.append(skill)

    def top_level(span: SpanView) -> bool:
        parent = by_id.get(span.parent_span_id or "")
        return parent is not None and parent.kind == "CHAIN" and parent.parent_span_id is None

    final = ""
    models = [s for s in spans if s.kind == "LLM"]
    # The last model span of the main conversation that said something: a subagent's last
    # words are not the session's answer.
    for span in reversed([s for s in models if top_level(s)]):
        text = span.attributes.get("gen_ai.output.text")
        if isinstance(text, str) and text.strip():
            final = text
            break
    prompt = ""
    for span in spans:
        if span.kind == "CHAIN" and span.parent_span_id is None:
            value = span.attributes.get("gen_ai.prompt")
            if isinstance(value, str) and value.strip():
                prompt = value
                break
    return Evidence(
        session_id=session.session_id,
        agent=session.agent,
        outcome=session.verdict,
        final_message=final,
        tool_sequence=sequence,
        skills=sorted(skills),
        turns=len(models),
        duration_ms=duration_ms(session.started_at, session.ended_at),
        first_prompt=prompt,
        label=label,
        replay_case=replay_case,
        text_withheld=text_withheld,
    )
