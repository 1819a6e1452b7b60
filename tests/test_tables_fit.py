"""Output that fits: every table of every command, on the real corpus, stays within
``$COLUMNS`` (at least 80; 100 when piped), shrinking its text columns, never its numbers
first; times carry their zone; empty results say why; one number format."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.cli._output import ELLIPSIS, cells, compact, cut, duration, table

from ._capture_helpers import extract_corpus
from .conftest import console_script

# --- the layout, over every width and every text ---------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=300)


def _print(rows: list[list[str]], headers: list[str], width: int, **kw: object) -> list[str]:
    @click.command()
    def show() -> None:
        table([list(r) for r in rows], headers, width=width, **kw)  # type: ignore[arg-type]

    return CliRunner().invoke(show).output.splitlines()


@given(
    st.integers(min_value=1, max_value=9).flatmap(
        lambda n: st.tuples(
            st.lists(st.text("abcdefghij", min_size=1, max_size=14), min_size=n, max_size=n),
            st.lists(st.lists(TEXT, min_size=n, max_size=n), max_size=6),
        )
    ),
    st.integers(min_value=80, max_value=260),
)
def test_every_line_fits_every_width(shape: tuple[list[str], list[list[str]]], width: int) -> None:
    headers, rows = shape
    lines = _print(rows, headers, width)
    assert len(lines) == len(rows) + 1
    assert all(cells(line) <= width for line in lines), lines


@given(
    st.lists(
        st.tuples(st.text("abc xyz", max_size=40), st.integers(0, 10**9)), min_size=1, max_size=5
    ),
    st.integers(min_value=80, max_value=200),
)
def test_numbers_are_never_cut_while_text_can_give_way(
    rows: list[tuple[str, int]], width: int
) -> None:
    body = [["x" * 200, f"{n:,}", t] for t, n in rows]
    lines = _print(body, ["title", "count", "note"], width, flex=0, text=(0, 2))
    assert all(cells(line) <= width for line in lines)
    for line, (_, n) in zip(lines[1:], rows, strict=True):
        assert f"{n:,}" in line.split()


def test_a_table_that_fits_is_printed_whole() -> None:
    rows = [["short", "12", "a title that fits"]]
    lines = _print(rows, ["a", "b", "c"], 80)
    assert ELLIPSIS not in "".join(lines) and lines[1].split() == [
        "short",
        "12",
        "a",
        "title",
        "that",
        "fits",
    ]


def test_one_number_format() -> None:
    assert [compact(v) for v in (950, 12_345, 866_000, 24_500_000, 112_000_000)] == [
        "950",
        "12.3k",
        "866k",
        "24.5M",
        "112M",
    ]
    assert [duration(v) for v in (12_000, 270_000, 180_720_000)] == ["12.0s", "4.5m", "50.2h"]


# --- every table on the real corpus, at 80 and 200 columns ------------------------------

EVALS = """\
version: 1
suites:
  - name: a-suite-name-long-enough-to-matter-in-a-narrow-terminal
    cases:
      - name: a-case-name-that-is-also-rather-long-for-eighty-columns
        graders:
          - {type: behavior, maxTools: 5}
      - name: reviewed
        graders:
          - {type: human_label, expect: good}
"""


class Corpus:
    def __init__(self, root: Path) -> None:
        self.home = extract_corpus(root / "home")
        self.db = root / "corpus.db"
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "SKILLOPS_DB")
        }
        self.env.update(HOME=str(self.home), SKILLOPS_DB=str(self.db), TZ="Europe/Berlin")
        subprocess.run(
            [console_script("skillopsd"), "--once"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.skill_dir = root / "skills" / "simplify"
        self.skill_dir.mkdir(parents=True)
        (self.skill_dir / "evals.yaml").write_text(EVALS)

    def run(self, *args: str, columns: int | None = None, code: int | None = 0) -> str:
        env = dict(self.env)
        if columns is not None:
            env["COLUMNS"] = str(columns)
        result = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if code is not None:
            assert result.returncode == code, (args, result.stdout, result.stderr)
        return result.stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    c = Corpus(tmp_path_factory.mktemp("tables"))
    import json

    sessions = json.loads(c.run("sessions", "--skill", "simplify", "--json"))
    note = "a long note about what the reviewer saw in this session " * 4
    c.run(
        "annotate",
        sessions[0]["session_id"],
        "--label",
        "good",
        "--skill",
        "simplify",
        "--note",
        note,
    )
    c.run("eval", "run", "simplify", "--skill-dir", str(c.skill_dir), code=1)
    return c


COMMANDS = [
    ("sessions",),
    ("sessions", "--forgotten"),
    ("skills",),
    ("annotations",),
    ("lineage", "simplify"),
    ("policy", "show"),
    ("skill", "versions", "simplify"),
    ("skill", "show", "simplify"),
    ("eval", "run", "simplify", "--skill-dir", "{skill_dir}"),
    ("status",),
]


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("columns", [80, 200, None])
def test_every_table_fits_the_terminal(
    corpus: Corpus, command: tuple[str, ...], columns: int | None
) -> None:
    args = [a.replace("{skill_dir}", str(corpus.skill_dir)) for a in command]
    out = corpus.run(*args, columns=columns, code=None)
    width = columns or 100  # piped with no $COLUMNS: 100
    assert out.strip(), args
    wide = [line for line in out.splitlines() if cells(line) > width]
    assert not wide, "\n".join(wide)


def test_narrower_than_80_is_80(corpus: Corpus) -> None:
    out = corpus.run("sessions", columns=40)
    widths = [cells(line) for line in out.splitlines()]
    assert max(widths) <= 80 and max(widths) > 60


def test_a_wide_terminal_shows_the_titles_whole(corpus: Corpus) -> None:
    import json

    newest = json.loads(corpus.run("sessions", "--limit", "1", "--json"))[0]
    out = corpus.run("sessions", "--limit", "1", columns=250)
    assert newest["title"].split()[-1] in out


def test_times_carry_their_zone_everywhere(corpus: Corpus) -> None:
    for args in (("sessions",), ("skills",), ("annotations",), ("lineage", "simplify")):
        header = corpus.run(*args).splitlines()[0]
        assert (
            "(CET)" in header
            or "(CEST)" in header
            or "(CEST/CET)" in header
            or "(CET/CEST)" in header
        ), (args, header)
        header = corpus.run(*args, "--utc").splitlines()[0]
        assert "(UTC)" in header, (args, header)


def test_empty_results_say_why(corpus: Corpus) -> None:
    out = corpus.run("sessions", "--since", "2099-01-01")
    assert out.startswith(
        "no sessions since 2099-01-01 00:00 CET; the newest session started 2026-07-13 13:13 CEST"
    )
    out = corpus.run("sessions", "--agent", "gemini")
    assert out.startswith("no sessions of agent gemini"), out
    out = corpus.run("skills", "--since", "2099-01-01")
    assert out.startswith("no skill loads since 2099-01-01"), out
    assert corpus.run("annotations", "--skill", "nothing-here").startswith(
        "no annotations of skill"
    )


def test_skill_scoped_figures_never_exceed_the_whole_session_on_real_data(corpus: Corpus) -> None:
    import json

    checked = 0
    for skill in json.loads(corpus.run("skills", "--json")):
        report = json.loads(corpus.run("skill", "show", skill["skill"], "--json"))
        for v in report["versions"]:
            scoped = v["scoped"]
            for part, whole in (
                ("calls", v["calls"]),
                ("tokens", v["tokens"]),
                ("duration_ms", v["duration_ms"]),
            ):
                if scoped[part]["n"] == whole["n"] and whole["mean"] is not None:
                    assert scoped[part]["mean"] <= whole["mean"] + 1e-6, (skill, v["tag"], part)
                    checked += 1
        base = report["baseline"]
        if base is not None:
            loaded = {s for v in report["versions"] for s in v["sessions"]}
            assert base["sessions"] >= 0 and loaded
    assert checked > 20


def test_every_session_show_fits_80_columns(corpus: Corpus) -> None:
    """F11: the span tree is cut to the line's room (details first, the ◀ verdict mark kept),
    the header fields wrap; nothing is wider than the terminal."""
    import json

    ids = [s["session_id"] for s in json.loads(corpus.run("sessions", "--json"))]
    assert len(ids) > 20
    marked = 0
    for sid in ids:
        out = corpus.run("session", "show", sid, columns=80)
        wide = [line for line in out.splitlines() if cells(line) > 80]
        assert not wide, (sid, wide)
        marked += out.count("◀ verdict")
    assert marked  # the mark survives the cut


def test_names_and_ids_stay_distinct_when_cut(corpus: Corpus) -> None:
    """F11: at 80 columns different skills never print as one label, nor sessions as one id;
    a cut count never reads as another number."""
    import json
    import re

    names = [s["skill"] for s in json.loads(corpus.run("skills", "--json"))]
    rows = corpus.run("skills", columns=80).splitlines()[1:]
    labels = [row.split(" ")[0] for row in rows]
    assert len(labels) == len(names) and len(set(labels)) == len(labels), labels
    for label in labels:  # each label is a whole name or a visibly cut prefix of one
        assert label in names or (
            label.endswith(ELLIPSIS) and any(n.startswith(label[:-1]) for n in names)
        ), label
    sessions = json.loads(corpus.run("usage", "session", "--json"))["session"]
    ids = [row.split(" ")[0] for row in corpus.run("usage", "session", columns=80).splitlines()]
    ids = ids[1 : 1 + len(sessions)]
    assert len(set(ids)) == len(ids) == len(sessions)
    assert all(any(s["period"].startswith(i) for s in sessions) for i in ids)
    for skill in names:
        out = corpus.run("skill", "show", skill, columns=80)
        assert not re.search(r"\d" + ELLIPSIS, out), (skill, out)


@given(
    st.lists(
        st.text(alphabet="ab:-_x0123456789", min_size=1, max_size=40), min_size=2, max_size=12
    ),
    st.integers(min_value=80, max_value=140),
)
def test_the_key_column_never_prints_two_different_values_alike(
    names: list[str], width: int
) -> None:
    """Whatever the other columns need, two different names never print as the same label."""
    rows = [[n, "12,345", "2026-07-24 10:44", "x" * 30, "y" * 25] for n in names]
    lines = _print(rows, ["name", "count", "when", "text", "more"], width, key=0, optional=(4,))
    assert all(cells(line) <= width for line in lines)
    labels = [line.split(" ")[0] for line in lines[1:]]
    distinct = {n for n in names}
    assert len({lab for lab, n in zip(labels, names, strict=True)}) == len(distinct)


@given(st.text(alphabet="0123456789.,k$()n= []–", max_size=40), st.integers(1, 40))
def test_a_cut_never_ends_inside_a_number(text: str, width: int) -> None:
    out = cut(text, width)
    if out.endswith(ELLIPSIS) and len(out) > 1:
        kept = out[:-1]
        following = text[len(kept) : len(kept) + 1]
        assert not (kept[-1:].isdigit() and (following.isalnum() or following in ".,%")), out
