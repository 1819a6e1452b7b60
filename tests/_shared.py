"""Tests that read ../shared (real fixtures, the real corpus) skip cleanly when it is absent.

A fresh clone has nothing beside it, so such a test skips with a message naming what to
provide. CI must never skip them silently: with ``SKILLOPS_REQUIRE_SHARED=1`` (set by
``.ci/run``) or ``CI=true`` every such skip is a failure instead. The same switch applies to
any other environment a test needs (:func:`skip_or_fail`), such as mounting a tmpfs.

Which tests need it is found, not declared: a test needs ../shared when its code, its
fixtures' code, or any helper function in ``tests`` they call refers to a path under it
(``FIXTURES``, ``CORPUS``, ``SHARED``...). A test the scan cannot see into (a subprocess
reading the corpus) is caught when it fails naming a missing path under ../shared.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
NEEDED = ("fixtures/qvr", "corpus/real-home.tar.gz", "corpus/agents")
STRICT_ENV = "SKILLOPS_REQUIRE_SHARED"

_TESTS_DIR = Path(__file__).resolve().parent


def strict() -> bool:
    """Whether a missing requirement fails the test (CI) instead of skipping it."""
    flag = os.environ.get(STRICT_ENV, "").strip().lower()
    ci = os.environ.get("CI", "").strip().lower()
    return flag not in ("", "0", "false", "no") or ci in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI (see :func:`strict`) fail with it instead."""
    if strict():
        pytest.fail(f"{reason} [{STRICT_ENV}/CI set: this may not be skipped]", pytrace=False)
    pytest.skip(reason)


def missing_shared() -> list[str]:
    """The parts of ../shared the tests use that are absent."""
    return [part for part in NEEDED if not (SHARED / part).exists()]


def shared_message(missing: Iterable[str]) -> str:
    return (
        f"needs ../shared beside the repository ({', '.join(NEEDED)}; missing: "
        f"{', '.join(missing)} under {SHARED}); CI provides it"
    )


def require_shared() -> None:
    """Skip (or, under CI, fail) the current test unless ../shared is complete."""
    missing = missing_shared()
    if missing:
        skip_or_fail(shared_message(missing))


# --- finding the tests that need it -------------------------------------------------------


def _is_shared_path(value: object) -> bool:
    return isinstance(value, Path) and value.is_relative_to(SHARED)


def _is_test_code(code: types.CodeType) -> bool:
    return Path(code.co_filename).resolve().is_relative_to(_TESTS_DIR)


class _Scan:
    """Walks code reachable from a test, looking for a reference to a path under ../shared."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def function(self, fn: Any) -> bool:
        fn = getattr(fn, "__func__", fn)  # bound methods
        fn = getattr(fn, "__wrapped__", fn)
        if not isinstance(fn, types.FunctionType):
            return False
        if any(_is_shared_path(d) for d in fn.__defaults__ or ()):
            return True
        return self.code(fn.__code__, fn.__globals__)

    def code(self, code: types.CodeType, env: dict[str, Any]) -> bool:
        if id(code) in self._seen or not _is_test_code(code):
            return False
        self._seen.add(id(code))
        for name in code.co_names:
            if name in env and self.value(env[name]):
                return True
        # Inner functions, lambdas and comprehensions share the enclosing globals.
        return any(
            isinstance(const, types.CodeType) and self.code(const, env) for const in code.co_consts
        )

    def value(self, value: object) -> bool:
        if _is_shared_path(value):
            return True
        if isinstance(value, type) and value.__module__.startswith("tests"):
            return any(self.function(v) for v in vars(value).values())
        return self.function(value)


def needs_shared(item: pytest.Item) -> bool:
    """Whether ``item``'s code, fixtures or parameters refer to a path under ../shared."""
    scan = _Scan()
    if isinstance(item, pytest.Function):
        if scan.function(item.obj):
            return True
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(_is_shared_path(v) for v in callspec.params.values()):
            return True
        info = getattr(item, "_fixtureinfo", None)
        for defs in info.name2fixturedefs.values() if info is not None else ():
            if any(scan.function(d.func) for d in defs):
                return True
    return False


def mark_needs_shared(items: list[pytest.Item]) -> None:
    """Mark every collected test that reads ../shared (called at collection).

    When it is absent these tests are marked skipped here, so that the skip is reported at
    the test's own line; under CI :func:`require_shared` fails them at setup instead.
    """
    missing = missing_shared()
    for item in items:
        if item.get_closest_marker("needs_shared") is None and needs_shared(item):
            item.add_marker(pytest.mark.needs_shared)
        if missing and not strict() and item.get_closest_marker("needs_shared") is not None:
            item.add_marker(pytest.mark.skip(reason=shared_message(missing)))


def skip_missing_shared(report: pytest.TestReport) -> None:
    """Turn a failure that names a missing path under ../shared into the skip it should be."""
    missing = missing_shared()
    if not report.failed or not missing or strict():
        return
    text = report.longreprtext
    if not any(f"shared{os.sep}{os.path.normpath(part)}" in text for part in missing):
        return
    report.outcome = "skipped"
    location = report.location
    report.longrepr = (str(location[0]), (location[1] or 0) + 1, shared_message(missing))
