"""Build a valid instance of every event type from its declared fields, so new types are covered."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import msgspec.inspect as mi

from skillopsd.events import EVENT_TYPES, Event


def _value(t: mi.Type, rnd: random.Random, depth: int = 0) -> Any:
    if isinstance(t, mi.StrType):
        return f"s{rnd.randrange(10**6)}-é"
    if isinstance(t, mi.BytesType):
        return bytes(rnd.randrange(256) for _ in range(12)) + b'{"x":1}'
    if isinstance(t, mi.BoolType):
        return rnd.random() < 0.5
    if isinstance(t, mi.IntType):
        return rnd.randrange(-5, 10**9)
    if isinstance(t, mi.FloatType):
        return rnd.random()
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.LiteralType):
        return rnd.choice(list(t.values))
    if isinstance(t, mi.UnionType):
        options = [x for x in t.types if not isinstance(x, mi.NoneType)] or list(t.types)
        return _value(rnd.choice(options), rnd, depth)
    if isinstance(t, mi.ListType):
        return [_value(t.item_type, rnd, depth + 1) for _ in range(2)]
    if isinstance(t, mi.DictType):
        return {f"k{i}": _value(t.value_type, rnd, depth + 1) for i in range(2)}
    if isinstance(t, mi.StructType):
        return _struct(t, rnd, depth + 1)
    if isinstance(t, mi.AnyType):
        return "any"
    raise TypeError(f"no sample for {t!r}")


def _struct(t: mi.StructType, rnd: random.Random, depth: int) -> Any:
    kwargs = {f.name: _value(f.type, rnd, depth) for f in t.fields}
    return t.cls(**kwargs)


def sample(cls: type[Event], seed: int = 0) -> Event:
    """One instance of ``cls`` with every field (optional ones too) set to a random value."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return _struct(info, random.Random(f"{cls.__name__}:{seed}"), 0)


def every_event(seed: int = 0) -> list[Event]:
    """One sample of every type in the vocabulary."""
    return [sample(cls, seed) for cls in EVENT_TYPES.values()]


def roundtrip_equal(a: Event, b: Event) -> bool:
    return msgspec.to_builtins(a) == msgspec.to_builtins(b)
