"""What ``--content`` lets leave the machine, event by event (the sync tests check the server)."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.events import EVENT_TYPES
from skillopsd.events.types import (
    AnnotationAdded,
    EvalCaseResult,
    EvalRunCompleted,
    GraderResult,
    SessionDerived,
    SpanDerived,
    TranscriptLineCaptured,
)
from skillopsd.team.content import DECISION_TYPES, NAMING_ATTRIBUTES, Content, outgoing

MARK = "qq-said-this-zz"
_encode = msgspec.msgpack.Encoder().encode


def _out(choice: Content, event: msgspec.Struct) -> tuple[str, bytes | None]:
    return outgoing(choice, type(event).__name__, type(event).SCHEMA, _encode(event))  # type: ignore[attr-defined]


def _span(attributes: dict[str, object]) -> SpanDerived:
    return SpanDerived(
        session_id="s",
        deriver_version=1,
        span_id="a",
        trace_id="t",
        parent_span_id=None,
        kind="TOOL",
        name="execute_tool Bash",
        attributes=attributes,  # type: ignore[arg-type]
    )


text_values = st.one_of(
    st.text().map(lambda t: t + MARK), st.lists(st.text().map(lambda t: MARK + t), min_size=1)
)


@given(
    st.dictionaries(st.text(min_size=1), text_values, max_size=8),
    st.dictionaries(
        st.text(min_size=1),
        st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.floats(),
        max_size=4,
    ),
)
def test_derived_spans_keep_numbers_and_names_only(
    texts: dict[str, object], numbers: dict[str, object]
) -> None:
    """Any string attribute not in the naming list is dropped, whatever its key."""
    texts = {k: v for k, v in texts.items() if k not in NAMING_ATTRIBUTES}
    kind, sent = _out(Content.DERIVED, _span({**numbers, **texts}))
    assert sent is not None
    assert MARK.encode() not in sent
    if texts:
        assert kind == "derived"
    kept = msgspec.msgpack.decode(sent)["attributes"]
    assert set(kept) == set(numbers) - set(texts)


def test_derived_keeps_naming_attributes() -> None:
    attributes = {"gen_ai.tool.name": "Bash", "gen_ai.prompt": MARK, "gen_ai.usage.input_tokens": 5}
    _, sent = _out(Content.DERIVED, _span(attributes))
    assert sent is not None
    kept = msgspec.msgpack.decode(sent)["attributes"]
    assert kept == {"gen_ai.tool.name": "Bash", "gen_ai.usage.input_tokens": 5}


def test_derived_withholds_lines_titles_and_grader_detail() -> None:
    line = TranscriptLineCaptured(
        agent="claude", source_id="x", generation=1, offset=0, line=MARK.encode(), captured_at="t"
    )
    assert _out(Content.DERIVED, line) == ("withheld", None)
    session = SessionDerived(
        session_id="s", agent="claude", native_session_id="n", deriver_version=1, title=MARK
    )
    kind, sent = _out(Content.DERIVED, session)
    assert kind == "derived" and sent is not None and MARK.encode() not in sent
    grader = GraderResult(session_id="s", index=0, type="contains", passed=False, detail=MARK)
    case = EvalCaseResult(suite="a", case="b", graded=1, passed_sessions=0, passed=False)
    run = EvalRunCompleted(
        run_id="r", skill="k", version_hash="v", suite_hash="h", deriver_version=1,
        sessions=["s"], passed=False, cases=[msgspec.structs.replace(case, results=[grader])],
    )  # fmt: skip
    kind, sent = _out(Content.DERIVED, run)
    assert kind == "derived" and sent is not None and MARK.encode() not in sent
    # A label (and its note, a person's words meant for the team) goes as it is.
    note = AnnotationAdded(annotation_id="a", session_id="s", label="bad", note=MARK)
    assert _out(Content.DERIVED, note) == ("exact", _encode(note))


def test_all_and_none() -> None:
    line = TranscriptLineCaptured(
        agent="claude", source_id="x", generation=1, offset=0, line=MARK.encode(), captured_at="t"
    )
    assert _out(Content.ALL, line) == ("exact", _encode(line))
    assert _out(Content.NONE, line) == ("withheld", None)
    note = AnnotationAdded(annotation_id="a", session_id="s", label="bad")
    assert _out(Content.NONE, note) == ("exact", _encode(note))
    # Every decision type is a type the log knows (a renamed event would silently stop going).
    assert set(EVENT_TYPES) >= DECISION_TYPES
