"""An unusable $TZ (an offset of 24 hours or more, a zone name the system does not know) is
said once on stderr and times are shown, and read, in UTC under a UTC header; every zone the
C library knows (a zone file, a POSIX rule) is used as before."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skillopsd.cli import _time

from ._daemon import daemon_env
from .conftest import console_script

MOMENT = "2026-11-05T11:00:00.000Z"


@pytest.fixture
def fresh_zone() -> Iterator[None]:
    before = os.environ.get("TZ")
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()
    _time._zone_problem.cache_clear()
    _time._local_is_utc.cache_clear()


def _use(tz: str) -> None:
    os.environ["TZ"] = tz
    time.tzset()
    _time._zone_problem.cache_clear()
    _time._local_is_utc.cache_clear()


@pytest.mark.parametrize(
    ("tz", "zone", "hour"),
    [
        ("Europe/Berlin", "CET", "12:00"),
        (":Europe/Berlin", "CET", "12:00"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", "CET", "12:00"),
        ("EST5EDT", "EST", "06:00"),
        ("<+0530>-5:30", "+0530", "16:30"),
        ("UTC0", "UTC", "11:00"),
        ("UTC", "UTC", "11:00"),
        ("", "UTC", "11:00"),
    ],
)
def test_zones_the_system_knows_are_used(fresh_zone: None, tz: str, zone: str, hour: str) -> None:
    _use(tz)
    assert _time._zone_problem() is None
    shown, label = _time.stamps([MOMENT], False)
    assert label == zone and shown == [f"2026-11-05 {hour}"]


@pytest.mark.parametrize(
    ("tz", "why"),
    [
        ("UTC+25", "its offset from UTC is 24 hours or more"),
        ("UTC-24", "its offset from UTC is 24 hours or more"),
        ("Europe/Berlinx", "not a time zone this system knows"),
        ("Nowhere", "not a time zone this system knows"),
        (":/etc/passwd", "not a time zone this system knows"),
        ("../../etc/passwd", "not a time zone this system knows"),
    ],
)
def test_an_unusable_zone_is_named_and_utc_is_shown(
    fresh_zone: None, tz: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(tz)
    assert _time._zone_problem() == f"TZ={tz}: {why}"
    assert _time.stamps([MOMENT], False) == (["2026-11-05 11:00"], "UTC")
    assert _time.stamps([MOMENT], False) == (["2026-11-05 11:00"], "UTC")
    err = capsys.readouterr().err
    assert err == f"skillopsctl: TZ={tz}: {why}; showing times in UTC\n"  # once
    # a local time typed on the command line is read in the same zone as times are shown
    assert _time.WHEN.convert("2026-11-05 11:00", None, None) == MOMENT


@given(st.text(max_size=40))
@example("UTC+25")
@example("A" * 3 + "-24:59:59")
@example("<+99>-99")
def test_no_tz_breaks_a_time(tz: str) -> None:
    if "\x00" in tz:
        return
    before = os.environ.get("TZ")
    try:
        _use(tz)
        shown, label = _time.stamps([MOMENT, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"], False)
        assert len(shown) == 3 and label
        if _time._zone_problem() is not None:
            assert label == "UTC"
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
        _time._zone_problem.cache_clear()
        _time._local_is_utc.cache_clear()


@pytest.mark.slow
def test_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / ".claude" / "projects" / "-tmp-tz"
    folder.mkdir(parents=True)
    (folder / "66666666-6666-4666-8666-666666666666.jsonl").write_text(
        '{"type":"user","sessionId":"66666666-6666-4666-8666-666666666666","uuid":"u1",'
        '"timestamp":"2026-11-04T10:00:00Z","cwd":"/tmp/tz","message":{"role":"user",'
        '"content":"hi"}}\n'
    )
    subprocess.run(
        [console_script("skillopsd"), "--once"], env=daemon_env(home), check=True, timeout=120
    )
    commands = [
        ("sessions",),
        ("sessions", "--since", "2026-11-04 09:00"),
        ("session", "show", "66666666"),
        ("usage", "daily", "--since", "2026-11-04", "--until", "2026-11-04"),
        ("status",),
    ]
    for tz in ("UTC+25", "Europe/Berlinx"):
        env = daemon_env(home, TZ=tz)
        for args in commands:
            result = subprocess.run(
                [console_script("skillopsctl"), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, (tz, args, result.stderr)
            assert (
                result.stderr
                == f"skillopsctl: TZ={tz}: "
                + (
                    "its offset from UTC is 24 hours or more"
                    if tz == "UTC+25"
                    else "not a time zone this system knows"
                )
                + "; showing times in UTC\n"
            ), (args, result.stderr)
            assert "(Europe)" not in result.stdout
        listing = subprocess.run(
            [console_script("skillopsctl"), "sessions"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert listing.startswith("started (UTC)") and "2026-11-04 10:00" in listing
    env = daemon_env(home, TZ="Europe/Berlin")
    result = subprocess.run(
        [console_script("skillopsctl"), "sessions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stderr == "" and result.stdout.startswith("started (CET)")
    assert "2026-11-04 11:00" in result.stdout
