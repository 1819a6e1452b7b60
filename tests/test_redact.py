"""Redaction: what is masked, what is left alone, and that no input makes it fail."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from skillopsd._redact import redact, redact_text, screen

from .redaction_cases import WHERE, nonsecrets, secret_cases, transcript_line

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


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


CASES = secret_cases()


def test_labelled_set_is_large_and_covers_every_place() -> None:
    assert len(CASES) >= 150
    assert {c.where for c in CASES} == set(WHERE)
    assert sum(len(v) for v in nonsecrets().values()) >= 300


@pytest.mark.parametrize("family", sorted({c.family for c in CASES}))
def test_each_family_is_masked_wherever_it_appears(family: str) -> None:
    cases = [c for c in CASES if c.family == family]
    leaked = []
    for case in cases:
        out, count = redact(transcript_line(case.where, case.text), was_json=True)
        record = msgspec.json.decode(out)  # still valid JSON
        text = "\n".join(_strings(record))
        if case.secret in text or case.secret.encode() in out:
            leaked.append(case)
        else:
            assert count >= 1
        if case.where == "user":  # capture and redact_text agree
            assert record["message"]["content"] == redact_text(case.text)
    assert 1 - len(leaked) / len(cases) >= 0.98, leaked


def test_names_stay_and_only_values_are_masked() -> None:
    for case in CASES:
        if case.family in ("password", "url-password", "basic-auth", "azure"):
            masked = redact_text(case.text)
            assert case.secret not in masked
            for kept in ("DB_PASS=", "--password=", '"password": "', "://app:", "AccountKey="):
                if kept in case.text:
                    assert kept in masked, (kept, masked)


@pytest.mark.parametrize("kind", sorted(nonsecrets()))
def test_real_transcript_text_is_never_masked(kind: str) -> None:
    for text in nonsecrets()[kind]:
        assert redact_text(text) == text
        for where in WHERE:
            line = transcript_line(where, text)
            assert redact(line, was_json=True) == (line, 0), text


def test_the_issue_examples_keep_their_words() -> None:
    for text in ("fix-cask-point-at-private-repo", "refs/heads/cursor/root-task-metadata-77e6"):
        assert redact_text(f"git push origin {text}") == f"git push origin {text}"
    assert "sk-" not in redact_text("use sk-" + "Ab1" * 16)


# Text that lands near every rule's edges: prefixes, names, separators, escapes, masks.
FRAGMENTS = [
    "sk-",
    "sk-ant-",
    "sk-proj-",
    "ghp_",
    "AKIA",
    "xoxb-",
    "xapp-1-",
    "eyJ",
    "eyJhbGciOiJIUzI1NiJ9",
    ".",
    "-",
    "_",
    "=",
    ":",
    " ",
    "\n",
    "\\",
    '"',
    "'",
    "@",
    "://",
    "/",
    "&sig=",
    "?",
    ";",
    "password",
    "token",
    "api_key",
    "DB_PASS",
    "secret",
    "Authorization: Basic ",
    "Bearer ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "[REDACTED]",
    "[REDACTED:openai]",
    "postgres://u:",
    "12345678:AA",
    "hf_",
    "npm_",
    "SG.",
    "whsec_",
    "Ab3dE",
    "xY9zW8vU7tS6",
    "0123456789abcdef",
    "é",
    "\u2028",
    "\x00",
    *(c.secret for c in CASES[::9]),
]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
# A mask can end the word a token was glued to; a second pass must still change nothing.
@example("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Bearer sk-sk-sk-DB_PASS")
def test_redaction_is_idempotent_and_keeps_json_valid(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
    line = msgspec.json.encode({"t": text, "n": [text, 1]})
    out, _ = redact(line, was_json=True)
    msgspec.json.decode(out)
    assert redact(out, was_json=True)[0] == out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | texts.map(str.encode), st.booleans())
def test_arbitrary_bytes_never_raise(line: bytes, was_json: bool) -> None:
    out, count = redact(line, was_json=was_json)
    assert (out == line) == (count == 0) or count > 0


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5))
@example(["password=\U00010000"])  # one character of four bytes: RE2 counted characters
def test_screening_a_block_flags_every_line_redaction_would_change(lines: list[str]) -> None:
    encoded = [msgspec.json.encode(t) for t in lines]
    block = b"\n".join(encoded) + b"\n"
    flags = screen(block, len(block))
    at = 0
    for line in encoded:
        flagged = any(at <= f <= at + len(line) for f in flags)
        if not flagged:
            assert redact(line, was_json=True, screened=True) == (line, 0)
        at += len(line) + 1


_WORDS = st.lists(
    st.text(alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=5),
    min_size=2,
    max_size=5,
).map(lambda words: [w[:12] for w in words])


@given(
    words=_WORDS,
    name=st.sampled_from(["password", "DB_PASS", "secret", "api_key", "token"]),
    quote=st.sampled_from(['"', "'"]),
    spacing=st.sampled_from(["=", " = ", ": "]),
    where=st.sampled_from(WHERE),
)
@settings(max_examples=150, deadline=None)
def test_a_quoted_value_with_spaces_is_masked_whole(
    words: list[str], name: str, quote: str, spacing: str, where: str
) -> None:
    # password = "correct horse battery staple" masked "correct" and stored the rest.
    phrase = " ".join(words)
    line = transcript_line(where, f"config: {name}{spacing}{quote}{phrase}{quote} # set")
    out, count = redact(line, was_json=True)
    msgspec.json.decode(out)
    assert count >= 1
    # A word may also occur in the line's envelope ("assis" in "assistant") or in the mask
    # ("ACTED"): only its occurrences in the phrase must be gone.
    unmasked = re.sub(rb"\[REDACTED[^\]]*\]", b"", out)
    for w in words:
        assert unmasked.count(w.encode()) == line.count(w.encode()) - phrase.count(w), out


@given(
    password=st.text(
        alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!-_",
        min_size=6,
        max_size=40,
    ),
    scheme=st.sampled_from(["redis", "rediss", "postgres", "amqp", "https"]),
    where=st.sampled_from(WHERE),
)
@settings(max_examples=100, deadline=None)
@example(password="AAAA_2", scheme="redis", where="user")  # once taken for a variable's name
@example(password="222xxx", scheme="redis", where="command")  # failed main once (issue 16, 8)
def test_a_url_password_without_a_user_is_masked(password: str, scheme: str, where: str) -> None:
    # redis://:s3cret@host is how Redis URLs carry a password; the empty user let it through.
    # A capitalised name of what goes there (DB_PASSWORD) is a placeholder, kept on purpose.
    assume(
        not re.fullmatch(r"[A-Z0-9_]*(?:PASS|PWD|SECRET|TOKEN|KEY|CRED|AUTH)[A-Z0-9_]*", password)
    )
    assume(not re.fullmatch(r"(?i)x+", password))  # a filler alone stands for a password
    line = transcript_line(where, f"REDIS_URL={scheme}://:{password}@cache.internal:6379/0")
    out, count = redact(line, was_json=True)
    assert count >= 1 and password.encode() not in out, out


@pytest.mark.parametrize(
    "user", ["x-access-token", "token", "api_key", "oauth2", "password", "secret", "apikey"]
)
@pytest.mark.parametrize(
    "text",
    [
        "git remote set-url origin https://{user}:{pw}@github.com/o/r.git && git push",
        "git clone https://{user}:{pw}@github.com/o/r.git repo && cd repo",
        "pip install git+https://{user}:{pw}@git.example.com/x.git#egg=x",
    ],
)
def test_a_url_whose_user_is_a_secret_word_keeps_its_host_and_path(text: str, user: str) -> None:
    # The user (x-access-token is GitHub Actions' idiom) is not the secret: only the password
    # is masked, the host and path of the remote stay in the log (review G21).
    pw = "Rk3mW8vQ5zTx2NpL7hYcAbC1"
    line = text.format(user=user, pw=pw)
    out, count = redact(line.encode(), was_json=False)
    assert count == 1
    assert out.decode() == line.replace(pw, "[REDACTED:url-password]")
