"""Shell scripts read by a parser: the deciding command of real-shaped scripts, and no script,
however broken, deep or large, makes the reader raise (derivation must never stop on one)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skillopsd.derive._ending import call_keys, describe, is_probe
from skillopsd.derive._shell import Script, read_script


@pytest.mark.parametrize(
    ("script", "key", "writes"),
    [
        ("VAR=$(go env GOPATH) && grep -rn x $VAR", "grep", False),
        ("GOOS=windows go test ./...", "go test", False),
        ("git -C path branch -a", "git branch", False),
        ("git -c core.pager=cat --no-pager log -5", "git log", False),
        ("cd x && go test ./...", "go test", False),
        ("cd x", "cd", False),
        ("rm -f out; go test -c", "go test", False),
        ("go test ./... 2>&1 | tail -20", "go test", False),
        ("cat a.log | grep -c FAIL", "grep", False),
        ("set -euo pipefail\ngo test ./... | tail -20", "go test", False),
        ("go vet ./... || true", "go vet", False),
        ("sudo -u app env A=1 B=2 make -C build install", "make install", False),
        ("timeout 300 npm --prefix web run build", "npm run", False),
        ("( cd sub && cargo build --release )", "cargo build", False),
        ('for f in *.go; do gofmt -l "$f"; done', "gofmt", False),
        ("if [ -f go.mod ]; then go build ./...; fi", "go build", False),
        ("! grep -q TODO a.go", "grep", False),
        ("cat > out.txt <<'EOF'\n$(rm -rf /) && ; |\nEOF", "cat", True),
        ("echo hi >> log.txt", "echo", True),
        ("ls 2>/dev/null; echo done >&2", "echo", False),
        ("sed -i 's/a/b/' f.go", "sed", True),
        ("uv run --directory svc python -m pytest -q", "uv run", False),
        ("python3 -m pytest -x", "python3 -m pytest", False),
        ("/usr/local/go/bin/go test ./...", "go test", False),
        ("# only a comment", "", False),
    ],
)
def test_deciding_command(script: str, key: str, writes: bool) -> None:
    read = read_script(script)
    assert (read.deciding.key if read.deciding else "") == key
    assert read.writes is writes


@pytest.mark.parametrize(
    ("script", "key"),
    [
        ("cd C:\\w; git --no-pager log -C a --oneline 2>&1 | Select-Object -Last 1", "git log"),
        ("$u = gh issue create --title 'x'; Write-Host $u", "gh issue"),
        ("Get-ChildItem . | Select-Object FullName", "Select-Object"),
        ("npm test; if ($LASTEXITCODE -ne 0) { Write-Host failed }", "npm test"),
        ('& "C:\\Program Files\\Git\\bin\\git.exe" status', "git status"),
    ],
)
def test_powershell_deciding_command(script: str, key: str) -> None:
    read = read_script(script, "powershell")
    assert read.deciding is not None and read.deciding.key == key


_PIECES = st.sampled_from(
    [
        "go test ./...",
        "git -C x status",
        "VAR=$(",
        ")",
        "$((",
        "`",
        "'",
        '"',
        "\\",
        "<<EOF\n",
        "<<'EOF'\n",
        "\nEOF\n",
        " | ",
        " && ",
        " || ",
        "; ",
        "\n",
        " 2>&1",
        " > out",
        "{ ",
        " }",
        "( ",
        "if [ -f x ]; then ",
        "; fi",
        "for i in 1 2; do ",
        "; done",
        "case $x in a) ",
        " ;; esac",
        "\x00",
        "\udcff",
        "é",
        "$env:X = 1; ",
        "@'\n",
        "\n'@",
    ]
)


@given(st.one_of(st.text(max_size=300), st.lists(_PIECES, max_size=40).map("".join)))
@example("$(" * 3000)
@example("'" + "a" * 10 + "\udcff")
@example("cat <<EOF\n" + "x\n" * 50)
def test_reading_any_script_never_raises(script: str) -> None:
    for dialect in ("bash", "powershell"):
        read = read_script(script, dialect)  # type: ignore[arg-type]
        assert isinstance(read, Script)
        assert read.deciding is None or read.deciding.key.strip() == read.deciding.key
    for tool in ("Bash", "exec_command", "powershell", "run_shell_command", "apply_patch"):
        for arguments in (json.dumps({"command": script}), json.dumps({"cmd": [script]}), script):
            assert isinstance(call_keys(tool, arguments), tuple)
            assert "\n" not in describe(tool, arguments)
            assert isinstance(is_probe(tool, arguments), bool)


def test_large_and_deep_scripts_are_read_quickly() -> None:
    huge = "echo x && " * 200_000 + "go test ./..."
    deep = "echo " + "$(" * 20_000 + "go test" + ")" * 20_000
    started = time.perf_counter()
    assert read_script(huge).deciding is not None
    read_script(deep)
    read_script(deep, "powershell")
    assert time.perf_counter() - started < 10


_CRASHERS = r"""
import random, sys
from skillopsd.derive._shell import deciding_command, read_script

rnd = random.Random(int(sys.argv[1]))
pieces = "{}1a$\"' -|;&()."
for _ in range(3000):
    chars = []
    for _ in range(rnd.randint(1, 12)):
        if rnd.random() < 0.3:
            chars.append(rnd.choice(pieces))
        else:
            cp = rnd.randint(0x80, 0x10FFFF)
            chars.append(chr(0x41 if 0xD800 <= cp <= 0xDFFF else cp))
    script = "".join(chars)
    read_script(script)
    read_script(script, "powershell")
    deciding_command(script)
print("read")
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_character_crashes_the_parser(seed: int) -> None:
    """tree-sitter-bash's scanner gave C's isdigit() any character it met: one beyond the BMP
    after '{' ('{\U000ea5cf', '{1𢐋') read past the table and killed the process (SIGSEGV) in
    about half of such runs; a transcript holding one would have taken the daemon down. In a
    child process, so that a crash fails this test instead of the suite."""
    done = subprocess.run(
        [sys.executable, "-c", _CRASHERS, str(seed)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "read", (done.returncode, done.stderr)


def test_words_keep_every_character_the_parser_was_not_shown() -> None:
    script = 'cd /w && grep -rn "привет — 🚀" src/é | tail -5; echo {1\U000ea5cf'
    commands = read_script(script).commands
    assert [c.text for c in commands] == [
        "cd /w",
        'grep -rn "привет — 🚀" src/é',
        "tail -5",
        "echo {1\U000ea5cf",
    ]
    assert commands[1].words == ("-rn", "привет — 🚀", "src/é")


_PIECES = (
    "go test ./...",
    "| tail -5",
    "2>&1",
    "&&",
    "||",
    ";",
    "$(",
    ")",
    "`",
    "'",
    '"',
    "\n",
    "set -o pipefail",
    "cat <<EOF\n$(x | y)\nEOF\n",
    "if true; then",
    "fi",
    "for i in 1; do",
    "done",
    "{",
    "}",
    "(",
    "| head",
    "| grep -v ok",
    "> out.txt",
    "tee f",
    "npm run build",
    "echo é😀",
    "cd x",
    "|| true",
    "! ",
    "&",
    "VAR=1",
    "xargs -I{} sh -c 'go test {} | cat'",
)


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=14))
@example(["}", "set -o pipefail", "$(", "||"])  # error recovery: an empty command at the end
# Empty commands at a stage's end that bytes alone would give the wrong stage (found by 60,000
# random draws: 103 such scripts).
@example(
    [
        *("| head", "|| true", "echo é😀", "| head", "$(", "'", "cat <<EOF\n$(x | y)\nEOF\n"),
        *("xargs -I{} sh -c 'go test {} | cat'", "> out.txt", '"', "|| true", "! ", "> out.txt"),
    ]
)
@example(
    [
        *("2>&1", "cat <<EOF\n$(x | y)\nEOF\n", "| grep -v ok", "{", "'", "&"),
        *("xargs -I{} sh -c 'go test {} | cat'", "tee f", "\n", "$(", "VAR=1", "tee f", "| head"),
        "\n",
    ]
)
@example(["go test ./...", "&&", "npm run build", "2>&1", "| tail -5"])
def test_a_stage_s_commands_by_bytes_are_those_its_walk_finds(pieces: list[str]) -> None:
    """_piped_into finds a stage's commands by their bytes (faster than walking each stage
    again); on any script, well formed or not, that is what walking the stage finds."""
    from skillopsd.derive import _shell

    script = " ".join(pieces)
    with _shell._reading(script) as source:
        root = _shell._parser("bash").parse(source).root_node
        commands, places, pipelines = [], [], []
        for node in _shell._walk(root, leaves=False):
            if node.type == "command" and (found := _shell._bash_command(node)) is not None:
                commands.append(found)
                places.append((node.start_byte, node.end_byte))
            elif node.type == "pipeline":
                pipelines.append(node)
        fast = _shell._piped_into(pipelines, places, commands)
        walked = _shell._piped_into(pipelines, places, commands, walked=True)
    assert fast == walked
