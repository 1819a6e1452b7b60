"""The contract every agent's store and deriver keep, run over every agent's real sessions.

Each provider lays real transcripts out in a temporary HOME exactly where its agent writes
them; the files are then captured through the real capture path (the stores' default roots,
``full_pass``), and every session captured is derived from what the log holds. A new agent
joins by adding one entry to ``PROVIDERS``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from skillopsd.derive import Derivation, derive_session
from skillopsd.deriving import SessionDeriver, SessionKey
from skillopsd.events import Database, EventLog
from skillopsd.events.types import SourceFileTracked
from skillopsd.projections import engine_for
from skillopsd.sources import Capturer, full_pass, resolve_roots

from ._agents import agent_corpus, gemini_files, layout_gemini
from ._capture_helpers import FIXTURES, extract_corpus, layout_claude_pair

OUTCOMES = {"success", "failure", "blocked", None}
SPAN_KINDS = {"CHAIN", "LLM", "TOOL", "SKILL"}
TOKEN_ATTRIBUTES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
)


def _claude_fixtures(home: Path) -> set[str]:
    parent, _child = layout_claude_pair(home)
    project = parent.parent
    for name in ("claude_skill", "claude_reasoning", "claude_injected_skill"):
        shutil.copy(FIXTURES / f"{name}.jsonl", project / f"{name}.jsonl")
    return {"claude"}


def _codex_fixtures(home: Path) -> set[str]:
    day = home / ".codex" / "sessions" / "2026" / "06" / "02"
    day.mkdir(parents=True)
    for i, name in enumerate(("codex_skill", "codex_narrated_skill", "codex_worktree_skill")):
        # The store reads the thread id from session_meta; the name only has to be a rollout's.
        target = day / f"rollout-2026-06-02T00-20-3{i}-{name}.jsonl"
        shutil.copy(FIXTURES / f"{name}.jsonl", target)
    return {"codex"}


def _real_home(home: Path) -> set[str]:
    extract_corpus(home)
    return {"claude", "codex"}


def _copilot_corpus(home: Path) -> set[str]:
    state = home / ".copilot" / "session-state"
    state.mkdir(parents=True)
    corpus = agent_corpus("copilot")
    for i, path in enumerate(sorted(corpus.glob("*.jsonl"))):
        if i == 0:  # the older flat layout, <id>.jsonl
            shutil.copy(path, state / path.name)
        else:
            (state / path.stem).mkdir()
            shutil.copy(path, state / path.stem / "events.jsonl")
    legacy = home / ".copilot" / "history-session-state"
    legacy.mkdir()
    for path in sorted(corpus.glob("*.json")):
        shutil.copy(path, legacy / path.name)
    return {"copilot"}


def _gemini_corpus(home: Path) -> set[str]:
    agent_corpus("gemini")
    for path in gemini_files():
        layout_gemini(home, path)
    return {"gemini"}


# name -> lays real sessions out under a HOME and returns the agents they belong to.
PROVIDERS: dict[str, Callable[[Path], set[str]]] = {
    "claude-fixtures": _claude_fixtures,
    "codex-fixtures": _codex_fixtures,
    "real-home": _real_home,
    "copilot-corpus": _copilot_corpus,
    "gemini-corpus": _gemini_corpus,
}


class Captured(msgspec.Struct):
    """One provider's HOME, captured and derived."""

    home: Path
    db: Database
    agents: set[str]
    laid_out: set[str]
    tracked: dict[str, str]  # path -> agent
    derivations: dict[SessionKey, Derivation]
    first_derive_appended: int


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def captured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    agents = PROVIDERS[request.param](home)
    laid_out = {str(p) for p in home.rglob("*") if p.is_file()}
    db = Database.open(home.parent / f"{home.name}.db")
    request.addfinalizer(db.close)
    roots = resolve_roots(env={"HOME": str(home)}, home=home)
    result = full_pass(Capturer(db), roots)
    assert result.errors == 0 and not result.stopped
    with db.read():
        tracked = {
            e.payload.path: e.payload.agent
            for e in EventLog(db).read(types=["SourceFileTracked"])
            if isinstance(e.payload, SourceFileTracked)
        }
    engine_for(db).catch_up()  # as the daemon does: derivation reads the projections
    deriver = SessionDeriver(db)
    keys = deriver.all_sessions()
    first = deriver.derive(keys)
    derivations = {
        key: derive_session(key.agent, key.native_id, deriver.sources_of(key)) for key in keys
    }
    return Captured(
        home, db, agents, laid_out, tracked, derivations, first_derive_appended=first.appended
    )


def _sessions(captured: Captured) -> list[Derivation]:
    return [d for d in captured.derivations.values() if d.is_session]


def test_every_file_is_captured_by_its_agents_store(captured: Captured) -> None:
    transcripts = {p for p in captured.laid_out if p.endswith((".jsonl", ".json"))}
    assert transcripts <= set(captured.tracked), transcripts - set(captured.tracked)
    assert set(captured.tracked.values()) == captured.agents
    assert {key.agent for key in captured.derivations} == captured.agents
    assert _sessions(captured) and captured.first_derive_appended > 0


def test_span_ids_are_unique_and_listed(captured: Captured) -> None:
    for derivation in _sessions(captured):
        ids = [s.span_id for s in derivation.spans]
        assert len(ids) == len(set(ids))
        assert derivation.session.span_ids == ids
        assert {s.session_id for s in derivation.spans} <= {derivation.session.session_id}
        assert len({s.trace_id for s in derivation.spans}) <= 1


def test_every_call_is_one_span(captured: Captured) -> None:
    for derivation in _sessions(captured):
        calls = [s for s in derivation.spans if s.kind in ("TOOL", "SKILL")]
        ids = Counter(str(s.attributes.get("gen_ai.tool.call.id")) for s in calls)
        assert [i for i, n in ids.items() if n > 1 and i != "None"] == []
        assert derivation.session.tools == sum(1 for s in calls if s.kind == "TOOL")
        for span in calls:
            assert span.attributes.get("gen_ai.operation.name") in ("execute_tool", None)


def test_parents_exist_and_turns_are_roots(captured: Captured) -> None:
    for derivation in _sessions(captured):
        by_id = {s.span_id: s for s in derivation.spans}
        for span in derivation.spans:
            assert span.parent_span_id is None or span.parent_span_id in by_id
            if span.kind != "CHAIN":
                assert span.parent_span_id is not None, span
        roots = [s for s in derivation.spans if s.parent_span_id is None]
        assert all(s.kind == "CHAIN" for s in roots)
        assert derivation.session.turns == len(roots)


def test_outcomes_and_kinds_are_in_the_enum(captured: Captured) -> None:
    for derivation in _sessions(captured):
        for span in derivation.spans:
            assert span.kind in SPAN_KINDS
            assert span.outcome in OUTCOMES
            if span.kind in ("CHAIN", "LLM"):
                assert span.outcome is None


def test_tokens_are_non_negative(captured: Captured) -> None:
    for derivation in _sessions(captured):
        for span in derivation.spans:
            for attribute in TOKEN_ATTRIBUTES:
                value = span.attributes.get(attribute)
                assert value is None or (isinstance(value, int) and value >= 0)
        tokens = derivation.session.tokens
        for value in (tokens.input, tokens.output, tokens.cache_read, tokens.cache_creation):
            assert value is None or value >= 0


def test_rederive_appends_nothing(captured: Captured) -> None:
    deriver = SessionDeriver(captured.db)
    again = deriver.derive(deriver.all_sessions())
    assert again.appended == 0 and again.errors == 0


def test_derivation_is_deterministic(captured: Captured) -> None:
    deriver = SessionDeriver(captured.db)
    for key, derivation in captured.derivations.items():
        twice = derive_session(key.agent, key.native_id, deriver.sources_of(key))
        assert msgspec.json.encode(twice) == msgspec.json.encode(derivation), key
