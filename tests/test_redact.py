"""Redaction: what is masked, what is left alone, and that no input makes it fail."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from skillopsd._redact import redact, redact_text

ANTHROPIC = "sk-ant-api03-" + "Ab1_" * 20


def test_redact_text_masks_what_capture_masks_inside_a_json_string() -> None:
    body = f"Use key {ANTHROPIC}\npassword=hunter2hunter2\n"
    line = msgspec.json.encode({"message": body})
    captured, _ = redact(line, was_json=True)
    assert redact_text(body) == msgspec.json.decode(captured)["message"]
    assert ANTHROPIC not in redact_text(body) and "hunter2" not in redact_text(body)
    assert "password=" in redact_text(body)


def test_redact_text_leaves_ordinary_text_unchanged() -> None:
    body = "---\nname: pdf\ndescription: Fill PDF forms\n---\n# Steps\n1. run `make`\n"
    assert redact_text(body) == body


@given(st.text())
def test_redact_text_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@given(st.text(alphabet=st.characters(codec="utf-8") | st.characters(categories=["Cs"])))
def test_redact_text_accepts_lone_surrogates(text: str) -> None:
    redact_text(text + "\ud800" + ANTHROPIC)
    assert ANTHROPIC not in redact_text(text + "\ud800 " + ANTHROPIC)
