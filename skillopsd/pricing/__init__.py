"""Cost: every model response priced from a maintained price table; usage reports."""

from __future__ import annotations

from .prices import (
    CACHE_WRITE_1H,
    PRICES_VERSION,
    REASONING_TOKENS,
    PriceArgs,
    Priced,
    Tokens,
    forget_prices_ahead,
    load_prices,
    price,
    price_ahead,
    provider_of,
)

__all__ = [
    "CACHE_WRITE_1H",
    "PRICES_VERSION",
    "REASONING_TOKENS",
    "PriceArgs",
    "Priced",
    "Tokens",
    "forget_prices_ahead",
    "load_prices",
    "price",
    "price_ahead",
    "provider_of",
]
