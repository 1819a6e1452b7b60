"""Prices: genai-prices' table, offline, missing as missing, the fast path equal to the library."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from skillopsd.pricing import Tokens, price
from skillopsd.pricing import prices as prices_module

# Usages of every shape: no cache, cache reads, 5-minute and 1-hour writes, both sides of a
# 200k and 272k long-context threshold, zero output, zero input.
USAGES = [
    Tokens(input=1_000, output=200),
    Tokens(input=53_000, output=500, cache_read=50_000, cache_write=2_000),
    Tokens(input=53_000, output=500, cache_read=50_000, cache_write=2_000, cache_write_1h=2_000),
    Tokens(input=10_000, output=9, cache_write=6_000, cache_write_1h=2_500),
    Tokens(input=199_999, output=1_000, cache_read=150_000),
    Tokens(input=250_000, output=1_000, cache_read=150_000, cache_write=10_000),
    Tokens(input=300_000, output=40_000, cache_read=290_000),
    Tokens(input=0, output=0),
    Tokens(input=7, output=0, cache_read=7),
]


def _model_prices() -> list[tuple[str, str, Any]]:
    from genai_prices import data_snapshot
    from genai_prices.types import ModelPrice

    out = []
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            entries = model.prices if isinstance(model.prices, list) else [model.prices]
            for entry in entries:
                mp = entry if isinstance(entry, ModelPrice) else entry.prices
                out.append((provider.id, model.id, mp))
    return out


def test_the_fast_path_equals_the_library_on_every_model_in_the_table() -> None:
    entries = _model_prices()
    assert len(entries) > 500  # the whole table, not a sample
    fast = 0
    for provider, model, mp in entries:
        for tokens in USAGES:
            ours = prices_module._fast(mp, tokens)
            if ours is None:
                continue
            fast += 1
            try:
                theirs = prices_module.library_price(mp, tokens)
            except Exception:  # the library refuses this shape; ours must not invent a price
                continue
            assert ours == theirs, (provider, model, tokens, ours, theirs)
    assert fast > 1_000


def test_known_models_are_priced_at_their_list_price() -> None:
    at = "2026-04-11T10:00:00.000Z"
    opus = price(
        "claude-opus-4-6",
        "anthropic",
        at,
        Tokens(
            input=53_000, output=500, cache_read=50_000, cache_write=2_000, cache_write_1h=2_000
        ),
    )
    assert opus is not None and opus.model == "claude-opus-4-6" and opus.provider == "anthropic"
    # $5 input, $0.5 cache read, $10 1-hour cache write, $25 output per million tokens.
    expected = Decimal(1_000 * 5 + 50_000 * 0.5 + 2_000 * 10 + 500 * 25) / 1_000_000
    assert opus.usd == pytest.approx(float(expected), rel=1e-12)
    five_minute = price(
        "claude-opus-4-6",
        "anthropic",
        at,
        Tokens(input=53_000, output=500, cache_read=50_000, cache_write=2_000),
    )
    assert five_minute is not None and five_minute.usd < opus.usd
    # Past the 272k threshold every input token costs the higher rate.
    below = price("gpt-5.4", "openai", at, Tokens(input=272_000, output=0))
    above = price("gpt-5.4", "openai", at, Tokens(input=272_001, output=0))
    assert below is not None and above is not None
    assert above.usd > 1.9 * below.usd


def test_the_price_in_force_when_the_request_was_made() -> None:
    from genai_prices import data_snapshot
    from genai_prices.types import ConditionalPrice

    systems = {"anthropic": "anthropic", "openai": "openai", "google": "gcp.gemini"}
    checked = 0
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id not in systems:
            continue
        for model in provider.models:
            if not isinstance(model.prices, list) or len(model.prices) < 2:
                continue
            later = model.prices[-1]
            assert isinstance(later, ConditionalPrice)
            start = getattr(later.constraint, "start_date", None)
            if not isinstance(start, date):
                continue
            day = datetime(start.year, start.month, start.day, tzinfo=UTC)
            before_at = (day - timedelta(days=2)).isoformat()
            after_at = (day + timedelta(days=2)).isoformat()
            for tokens in USAGES:
                if tokens.input == 0:
                    continue
                old = prices_module.library_price(model.prices[0].prices, tokens)
                new = prices_module.library_price(later.prices, tokens)
                if old == new:
                    continue
                before = price(model.id, systems[provider.id], before_at, tokens)
                after = price(model.id, systems[provider.id], after_at, tokens)
                assert before is not None and after is not None
                assert (before.usd, after.usd) == (float(old), float(new)), model.id
                checked += 1
    assert checked > 0, "this genai-prices table has no dated price change for a main provider"


@pytest.mark.parametrize(
    ("model", "at", "tokens"),
    [
        ("claude-unknown-99", "2026-04-11T10:00:00Z", Tokens(input=10, output=10)),
        ("", "2026-04-11T10:00:00Z", Tokens(input=10, output=10)),
        (None, "2026-04-11T10:00:00Z", Tokens(input=10, output=10)),
        ("claude-opus-4-6", None, Tokens(input=10, output=10)),
        ("claude-opus-4-6", "yesterday", Tokens(input=10, output=10)),
        ("claude-opus-4-6", "2026-04-11T10:00:00", Tokens(input=10, output=10)),  # no zone
        ("claude-opus-4-6", "2026-04-11T10:00:00Z", None),
        ("claude-opus-4-6", "2026-04-11T10:00:00Z", Tokens(input=10, output=-1)),
        ("claude-opus-4-6", "2026-04-11T10:00:00Z", Tokens(input=10, output=1, cache_read=11)),
        (
            "claude-opus-4-6",
            "2026-04-11T10:00:00Z",
            Tokens(input=10, output=1, cache_write=2, cache_write_1h=3),
        ),
    ],
)
def test_what_cannot_be_priced_has_no_price(
    model: str | None, at: str | None, tokens: Tokens | None
) -> None:
    assert price(model, "anthropic", at, tokens) is None


def test_pricing_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pricing opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    prices_module._model.cache_clear()
    threads = threading.active_count()
    for model, system in [
        ("claude-opus-4-7", "anthropic"),
        ("gpt-5.5", "openai"),
        ("gemini-2.5-pro", "gcp.gemini"),
        ("claude-sonnet-4.5", "github_copilot"),
        ("no-such-model", None),
    ]:
        price(model, system, "2026-06-01T00:00:00Z", Tokens(input=100, output=10))
    from genai_prices import data_snapshot

    assert not data_snapshot.get_snapshot().from_auto_update
    assert threading.active_count() == threads  # no updater thread started


def test_prices_handed_over_are_used_until_forgotten() -> None:
    """skillopsd's derivation workers price the responses they derive and hand the prices
    over (the same function, in a forked copy of the process): the fold then takes them
    instead of loading the price table, and they are dropped once folded."""
    from skillopsd.pricing import Priced, forget_prices_ahead, price_ahead

    tokens = Tokens(input=1000, output=10)
    at = "2026-06-01T00:00:00+00:00"
    computed = price("claude-sonnet-4-5", "anthropic", at, tokens)
    marker = Priced(usd=-1.0, provider="p", model="m")  # not a price the table gives
    price_ahead([(("claude-sonnet-4-5", "anthropic", at, tokens), marker)])
    try:
        assert price("claude-sonnet-4-5", "anthropic", at, tokens) == marker
        assert price("claude-sonnet-4-5", None, at, tokens) == computed  # other arguments
    finally:
        forget_prices_ahead()
    assert price("claude-sonnet-4-5", "anthropic", at, tokens) == computed
