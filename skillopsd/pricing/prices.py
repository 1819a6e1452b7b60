"""The price of one model response, from genai-prices' bundled price table.

genai-prices (Pydantic's maintained price library) ships its table inside the package and
only fetches a newer one when asked to (``UpdatePrices``, never used here): the cost of a
response is a pure function of its model, provider, token counts, request time and the
installed library version (:data:`PRICES_VERSION`). A model the table does not know, or a
response whose input or output count was not reported, has no price (``None``): never zero.

The library's own ``calc_price`` builds a usage object and walks its unit registry per call
(~0.3 ms); a backfill prices tens of thousands of responses, so the common shapes (input,
cache read, 5-minute and 1-hour cache writes, output; flat or threshold-tiered) are computed
here with the library's own unit arithmetic (``calc_unit_price``), and every other shape goes
through ``calc_price``. ``tests/test_pricing.py`` checks the two agree on every model in the
table.
"""

from __future__ import annotations

import functools
import importlib.util
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider


def _library_version() -> str:
    """genai-prices' installed version, read from its dist-info folder's name.

    Every command's start-up reads it (the usage projection's version includes it), and
    ``importlib.metadata`` costs more to import than the rest of a read command's start.
    """
    spec = importlib.util.find_spec("genai_prices")
    if spec is not None and spec.origin:
        site = Path(spec.origin).parent.parent
        found = sorted(site.glob("genai_prices-*.dist-info"))
        if len(found) == 1:
            return found[0].name.removeprefix("genai_prices-").removesuffix(".dist-info")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genai-prices")
    except PackageNotFoundError:  # pragma: no cover - a dependency of the package
        return "0"


PRICES_VERSION = _library_version()
"""The installed genai-prices version: the price table every cost was computed with."""

# The part of a response's cache writes kept for an hour (Claude Code reports it; priced higher).
CACHE_WRITE_1H = "skillops.usage.cache_creation_1h.input_tokens"
# The part of a response's output tokens that was thinking, where the agent reports it apart
# (Gemini CLI's ``thoughts``): priced as output, inside the output count; usage reports show
# it outside ``output`` and inside ``total``, as ccusage does.
REASONING_TOKENS = "skillops.usage.reasoning_tokens"
# gen_ai.system (as the derivers write it) -> genai-prices provider id. Copilot bills by
# subscription; its responses are priced at the model vendor's list price, found by model.
_PROVIDERS: dict[str, str | None] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gcp.gemini": "google",
    "github_copilot": None,
}
# Price keys the fast path computes; a model priced by any other key (per-modality text,
# audio, per-request fees that apply to every call) goes through the library's calc_price.
_FAST_KEYS = frozenset(
    {"input_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok", "output_mtok"}
)
# Priced per search a tool made, which transcripts do not report: they never apply here
# (a per-request fee, ``requests_kcount``, does apply, and takes the library's path).
_UNREPORTED_KEYS = frozenset({"web_searches_kcount", "storage_searches_kcount"})


class Tokens(msgspec.Struct, frozen=True):
    """One response's usage, with ``input`` counting cached input too (OpenTelemetry GenAI).

    ``cache_write_1h`` is the part of ``cache_write`` written for an hour (Anthropic prices
    it higher); ``reasoning`` is part of ``output`` and priced as output.
    """

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0


class Priced(msgspec.Struct, frozen=True):
    """A response's cost in USD and the table entry that priced it."""

    usd: float
    provider: str
    model: str


def provider_of(system: str | None) -> str | None:
    """The genai-prices provider id for a span's ``gen_ai.system`` (None: find by model)."""
    return _PROVIDERS.get(system or "")


@functools.lru_cache(maxsize=4096)
def _model(model: str, provider: str | None) -> tuple[Provider, ModelInfo] | None:
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    try:
        return snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        if provider is None:
            return None
    # A vendor's model served under another system name: look it up by the model alone.
    try:
        return snapshot.find_provider_model(model, None, None, None)
    except LookupError:
        return None


def load_prices() -> None:
    """Load the price table now (it loads on the first price otherwise)."""
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()


def _fast(prices: ModelPrice, tokens: Tokens) -> Decimal | None:
    from genai_prices.types import calc_unit_price

    keys = {
        k
        for k, v in prices.__dict__.items()
        if v is not None and not k.startswith("_") and k not in _UNREPORTED_KEYS
    }
    if not keys <= _FAST_KEYS or "input_mtok" not in keys or "output_mtok" not in keys:
        return None
    write_5m = tokens.cache_write - tokens.cache_write_1h
    if (tokens.cache_read and "cache_read_mtok" not in keys) or (
        tokens.cache_write and "cache_write_mtok" not in keys
    ):
        return None
    one_hour_key = "cache_write_1h_mtok" if "cache_write_1h_mtok" in keys else "cache_write_mtok"
    uncached = tokens.input - tokens.cache_read - tokens.cache_write
    total_input = tokens.input
    per = 1_000_000
    return (
        calc_unit_price(prices.input_mtok, uncached, total_input, per)
        + calc_unit_price(prices.cache_read_mtok, tokens.cache_read, total_input, per)
        + calc_unit_price(prices.cache_write_mtok, write_5m, total_input, per)
        + calc_unit_price(getattr(prices, one_hour_key), tokens.cache_write_1h, total_input, per)
        + calc_unit_price(prices.output_mtok, tokens.output, total_input, per)
    )


def library_price(prices: ModelPrice, tokens: Tokens) -> Decimal:
    """The library's own computation (the reference the fast path must equal)."""
    from genai_prices import Usage

    usage: dict[str, Any] = {"input_tokens": tokens.input, "output_tokens": tokens.output}
    if tokens.cache_read:
        usage["cache_read_tokens"] = tokens.cache_read
    if tokens.cache_write:
        usage["cache_write_tokens"] = tokens.cache_write
        usage["cache_write_1h_tokens"] = tokens.cache_write_1h
        usage["cache_write_5m_tokens"] = tokens.cache_write - tokens.cache_write_1h
    return prices.calc_price(Usage(**usage))["total_price"]


# (model, system, at, tokens): the arguments of one price() call.
PriceArgs = tuple[str, str | None, str, Tokens]
# Prices computed ahead by the processes that derived the responses (skillopsd's derivation
# workers, which have the spans in hand and a core to spare): the same pure function of the
# same arguments and library, handed over so this process need not load the price table.
_ahead: dict[PriceArgs, Priced | None] = {}


def price_ahead(prices: list[tuple[PriceArgs, Priced | None]]) -> None:
    """Remember prices computed by :func:`price` in another process of this program."""
    _ahead.update(prices)


def forget_prices_ahead() -> None:
    """Drop what :func:`price_ahead` handed over (once the responses have been priced)."""
    _ahead.clear()


def price(
    model: str | None, system: str | None, at: str | None, tokens: Tokens | None
) -> Priced | None:
    """The cost of one response at the price in force at ``at`` (ISO 8601), or None.

    None when the model is unknown to the table, the time is missing or unreadable, or the
    counts are missing or inconsistent (cached input larger than all input).
    """
    if not model or tokens is None or not at:
        return None
    if _ahead:
        try:
            return _ahead[model, system, at, tokens]
        except KeyError:
            pass
    return _price(model, system, at, tokens)


def _price(model: str, system: str | None, at: str, tokens: Tokens) -> Priced | None:
    if min(tokens.input, tokens.output, tokens.cache_read, tokens.cache_write) < 0:
        return None
    if tokens.cache_read + tokens.cache_write > tokens.input:
        return None
    if not 0 <= tokens.cache_write_1h <= tokens.cache_write:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    found = _model(model, provider_of(system))
    if found is None:
        return None
    provider, info = found
    prices = info.get_prices(when)
    try:
        usd = _fast(prices, tokens)
        if usd is None:
            usd = library_price(prices, tokens)
    except (ArithmeticError, ValueError, TypeError):
        return None
    return Priced(usd=float(usd), provider=provider.id, model=info.id)
