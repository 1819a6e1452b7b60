"""Shell scripts as a shell reads them: the simple commands in them and the one that decides.

A call's script is parsed by tree-sitter (``tree-sitter-bash``; ``tree-sitter-powershell`` for
PowerShell), never split on strings: heredocs, ``$(…)``, quotes and comments stay where they
belong. From the tree come every simple command (program, subcommand, words) and the command
whose exit status is the script's: the last of a ``;`` / ``&&`` list, the left side of an
``||`` (the right is a fallback), the last stage of a pipeline that is not a filter of its
output (``go test ./... | tail -20`` is a ``go test``: ``tail`` only shows part of what it
printed), the body of a redirect, subshell, group or loop. Every command also says whether its
failure reaches the script's exit status (``Script.carried``): ``go test | tail`` (no
``pipefail``), ``go test; echo done`` and ``go test || true`` hide the test's status, which
then has to be read from its output (``_runners.py``). Variable assignments, a leading ``cd x &&``
and wrappers (``env``, ``sudo``, ``timeout 60``) do not name the program, and options that take
a value (``git -C path branch``) do not name the subcommand. PowerShell's exit status is the
last native program's (``$LASTEXITCODE``; cmdlets such as ``Select-Object`` do not set it).

tree-sitter never raises on bad input (it marks error nodes and keeps going); anything else that
goes wrong falls back to the script's first words, so no script can stop a derivation.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    import tree_sitter

Dialect = Literal["bash", "powershell"]

# Scripts are parsed up to this many bytes: the decision sits near the start or the end, and
# tool arguments are already clipped when derived.
_MAX_BYTES = 64 * 1024
# Nesting deeper than this is not walked (a script of 10,000 nested "$(" would be).
_MAX_DEPTH = 200

# Words before the program that do not name it, with the options of theirs that take a value.
_WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "sudo": frozenset({"-u", "--user", "-g", "--group", "-C", "-D", "-h", "-p", "-r", "-t", "-U"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "time": frozenset({"-f", "--format", "-o", "--output"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "nohup": frozenset(),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "xargs": frozenset(
        {"-I", "-i", "-L", "-l", "-n", "-P", "-s", "-d", "-E", "-a", "--max-args", "--delimiter"}
    ),
}
# Wrappers whose first plain word is theirs (``timeout 60 go test``), not the program's.
_WRAPPER_ARGUMENT = frozenset({"timeout"})
# Programs whose first argument is a subcommand worth telling apart (``go test``, ``go build``),
# with their options that take a value (``git -C path branch`` is ``git branch``).
_SUBCOMMANDS: dict[str, frozenset[str]] = {
    "git": frozenset(
        {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"}
    ),
    "go": frozenset({"-C"}),
    "gh": frozenset({"-R", "--repo", "--hostname"}),
    "npm": frozenset({"--prefix", "-w", "--workspace", "-C"}),
    "pnpm": frozenset({"-C", "--dir", "-F", "--filter", "-w", "--workspace-dir"}),
    "yarn": frozenset({"--cwd"}),
    "bun": frozenset({"--cwd"}),
    "npx": frozenset({"-p", "--package"}),
    "cargo": frozenset({"--manifest-path", "-Z", "--config", "-C"}),
    "docker": frozenset({"-H", "--host", "-c", "--context", "--config", "-l", "--log-level"}),
    "kubectl": frozenset({"-n", "--namespace", "--context", "--kubeconfig", "-s", "--server"}),
    "uv": frozenset({"--directory", "--project", "-p", "--python", "--cache-dir"}),
    "pip": frozenset(),
    "pip3": frozenset(),
    "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
    "make": frozenset({"-C", "-f", "--file", "--directory", "-I", "-o", "-W"}),
    "just": frozenset({"-f", "--justfile", "-d", "--working-directory"}),
    "terraform": frozenset(),
    "dotnet": frozenset(),
    "mvn": frozenset({"-f", "--file", "-pl", "--projects", "-P", "-s", "-D"}),
    "gradle": frozenset({"-p", "--project-dir", "-b", "-x", "--exclude-task"}),
    "swift": frozenset({"--package-path"}),
    "deno": frozenset(),
    "brew": frozenset(),
    "apt": frozenset(),
    "apt-get": frozenset(),
    "systemctl": frozenset(),
    "rustup": frozenset(),
    "conda": frozenset({"-n", "--name"}),
    "skillopsctl": frozenset({"--db"}),
}
# ``python -m pytest`` runs pytest: the module is the subcommand.
_MODULE_RUNNERS = frozenset({"python", "python3", "py"})
# Commands that set up the script rather than do its work: they decide only when alone.
_SETUP = frozenset(
    {"cd", "pushd", "popd", "set", "export", "source", ".", "shopt", "trap", "ulimit", "umask"}
)
_SETUP_PS = frozenset({"cd", "set-location", "push-location", "pop-location", "sl", "chdir"})
# PowerShell cmdlets are Verb-Noun; they do not set $LASTEXITCODE, native programs do.
_CMDLET = re.compile(r"\A[A-Za-z]+-[A-Za-z]+\Z")
# Aliases of cmdlets that look like programs.
_PS_ALIASES = frozenset(
    {"echo", "write", "ls", "dir", "gci", "cat", "gc", "type", "select", "where", "foreach", "%"}
    | {"sort", "measure", "ft", "fl", "cls", "rm", "del", "cp", "copy", "mv", "move", "md"}
    | {"mkdir", "ni", "sc", "ac", "iex", "sls", "pwd", "gl", "sleep", "start", "kill", "ps"}
)
# Tools that run a shell script, and the dialect they run it in.
SHELL_TOOLS: dict[str, Dialect] = {
    "Bash": "bash",
    "exec_command": "bash",
    "shell_command": "bash",
    "shell": "bash",
    "local_shell_call": "bash",
    "bash": "bash",
    "powershell": "powershell",
    "run_shell_command": "bash",
}
_POWERSHELLS = frozenset({"powershell", "pwsh", "powershell.exe", "pwsh.exe"})
_decoder = msgspec.json.Decoder()


def arguments_of(arguments: object) -> dict[str, object] | None:
    """A call's JSON arguments as an object; None when they are not one."""
    if not isinstance(arguments, str):
        return None
    try:
        value = _decoder.decode(arguments)
    except (msgspec.DecodeError, UnicodeError):
        return None
    return value if isinstance(value, dict) else None


def call_script(tool: str, arguments: object) -> tuple[str, Dialect] | None:
    """The shell script a call ran and its dialect, from its JSON arguments."""
    dialect = SHELL_TOOLS.get(tool)
    if dialect is None:
        return None
    value = arguments_of(arguments)
    if value is None:
        return None
    command = value.get("cmd", value.get("command"))
    if isinstance(command, list):
        parts = [str(part) for part in command]
        # ["bash", "-lc", "<script>"] / ["powershell.exe", "-Command", "<script>"]: the script ran.
        if len(parts) >= 3 and parts[-2] in ("-lc", "-c", "-Command", "-command"):
            shell = parts[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
            return parts[-1], "powershell" if shell in _POWERSHELLS else "bash"
        return " ".join(parts), dialect
    return (command, dialect) if isinstance(command, str) else None


_DEV_NULL = frozenset({"/dev/null", "$null", "nul", "NUL", "$NULL"})
# Pipeline stages that pass on (part of) what came before them: they do not say what the call
# was for, the stage before them does.
_FILTERS = frozenset(
    {"tail", "head", "grep", "egrep", "fgrep", "rg", "tee", "sort", "uniq", "cat", "less", "more"}
    | {"wc", "cut", "tr", "column", "sed", "awk", "nl", "col", "fold", "jq", "ts", "cat -A"}
)


class Command(msgspec.Struct, frozen=True):
    """One simple command: its program (a file name, no folder), subcommand, words and text."""

    program: str
    subcommand: str | None = None
    words: tuple[str, ...] = ()
    text: str = ""

    @property
    def key(self) -> str:
        """What "the same kind of command" means: ``go test``, ``git branch``, ``rg``."""
        return f"{self.program} {self.subcommand}" if self.subcommand else self.program


class Script(msgspec.Struct, frozen=True):
    """What a script runs: every simple command in order, the deciding one, and whether it
    writes a file (a redirect to a file, ``sed -i``, ``tee``, ``Set-Content``)."""

    commands: tuple[Command, ...] = ()
    deciding: Command | None = None
    writes: bool = False
    # Per command (as in ``commands``): whether its failure makes the script fail. False for
    # a pipeline stage before the last (no ``pipefail``), a statement before the last (no
    # ``set -e``), the left of ``||`` (unless the right exits non-zero), a condition, a loop's
    # body, a command substitution.
    carried: tuple[bool, ...] = ()
    # Per command: the commands of the later stages of the pipeline it is a stage of (what its
    # output goes through: ``go test | grep -v ok | head`` → ``grep``, ``head``).
    piped_into: tuple[tuple[Command, ...], ...] = ()
    # Per command: its status is hidden only by the pipe it is a stage of (``go build | tail``;
    # not ``go build | tail || true`` nor a loop's body, which hide it on purpose).
    hidden_by_pipe: tuple[bool, ...] = ()


_EMPTY = Script()


@lru_cache(maxsize=2)
def _parser(dialect: Dialect) -> tree_sitter.Parser:
    """The parser of a dialect, loaded on first use: a session with no shell call to read
    (most of them: only failed calls and what may resolve them are read) never loads it."""
    import tree_sitter

    if dialect == "powershell":
        import tree_sitter_powershell as grammar
    else:
        import tree_sitter_bash as grammar  # type: ignore[no-redef]
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


# tree-sitter-bash's scanner passes the character it looks at to C's isdigit()/isalpha(),
# which index a table of 384 entries: a character beyond it (above U+00FF) reads past the
# table, so the answer depends on the C library's memory, and beyond the BMP (an emoji, a
# private-use code point) after ``{`` the read leaves mapped memory and the process dies of
# SIGSEGV, taking the daemon with it. The parser is shown only ASCII: every byte of a
# multi-byte character as ``x`` (a word character, as the character is to the shell), and
# each node's text is read from the script's own bytes at the same offsets.
_ASCII_ONLY = bytes(range(128)) + b"x" * 128
_ORIGINAL: ContextVar[bytes] = ContextVar("_ORIGINAL", default=b"")


@contextmanager
def _reading(script: str) -> Iterator[bytes]:
    """The bytes to parse ``script`` from (ASCII, at most _MAX_BYTES); node texts come from
    the script's own UTF-8 while the block runs."""
    original = script.encode("utf-8", "replace")[:_MAX_BYTES]
    token = _ORIGINAL.set(original)
    try:
        yield original.translate(_ASCII_ONLY)
    finally:
        _ORIGINAL.reset(token)


@lru_cache(maxsize=4096)
def read_script(script: str, dialect: Dialect = "bash") -> Script:
    """The commands of ``script`` as its shell reads them (never raises)."""
    if not script.strip():
        return _EMPTY
    try:
        with _reading(script) as source:
            if dialect == "powershell":
                return _powershell(_parser("powershell").parse(source).root_node)
            return _bash(_parser("bash").parse(source).root_node)
    except (RecursionError, ValueError, UnicodeError, AttributeError, TypeError, IndexError):
        return _fallback(script)


@lru_cache(maxsize=4096)
def deciding_command(script: str, dialect: Dialect = "bash") -> Command | None:
    """Only the command that decides ``script``'s exit status (cheaper than :func:`read_script`:
    the deriver asks this of every call whose kind may resolve a failure)."""
    if dialect == "powershell" or not script.strip():
        return read_script(script, dialect).deciding
    try:
        with _reading(script) as source:
            root = _parser("bash").parse(source).root_node
            pipefail = "pipefail" in script and any(
                c.program == "set" and "pipefail" in c.words for c in read_script(script).commands
            )
            deciding = _bash_deciding(root, pipefail)
        return (
            deciding if deciding is not None or not root.has_error else _fallback(script).deciding
        )
    except (RecursionError, ValueError, UnicodeError, AttributeError, TypeError, IndexError):
        return _fallback(script).deciding


def _fallback(script: str) -> Script:
    """The first words of the first line, when the tree could not be read."""
    words = script.split("\n", 1)[0].split()
    if not words:
        return _EMPTY
    command = _command_of(words, _one_line(script))
    return Script(commands=(command,), deciding=command, writes=">" in script, carried=(True,))


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _program(word: str) -> str:
    name = " ".join(word.replace("\\", "/").rsplit("/", 1)[-1].split())
    return name[:-4] if name.lower().endswith(".exe") else name


def _command_of(words: list[str], text: str) -> Command:
    """The program, subcommand and arguments of a command's words (assignments already gone)."""
    i = 0
    while i < len(words):
        name = _program(words[i])
        takes = _WRAPPERS.get(name)
        if takes is None:
            break
        i += 1
        plain_seen = False
        while i < len(words):
            word = words[i]
            if word in takes:
                i += 2
            elif word.startswith("-") or ("=" in word and name == "env" and _is_assignment(word)):
                i += 1
            elif name in _WRAPPER_ARGUMENT and not plain_seen:
                plain_seen = True
                i += 1
            else:
                break
    if i >= len(words):
        program = _program(words[0]) if words else ""
        return Command(program=program, words=tuple(words[1:]), text=text)
    program = _program(words[i])
    rest = words[i + 1 :]
    subcommand: str | None = None
    if program in _SUBCOMMANDS:
        subcommand = _first_plain(rest, _SUBCOMMANDS[program])
        subcommand = " ".join(subcommand.split()) or None if subcommand else None
    elif program.lower() in _MODULE_RUNNERS and "-m" in rest[:3]:
        at = rest.index("-m")
        if at + 1 < len(rest):
            subcommand = " ".join(f"-m {rest[at + 1]}".split())
    return Command(program=program, subcommand=subcommand, words=tuple(rest), text=text)


def _first_plain(words: list[str], takes_value: frozenset[str]) -> str | None:
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-") or word.startswith("+"):
            skip = word in takes_value
            continue
        return word
    return None


_ASSIGNMENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")


def _is_assignment(word: str) -> bool:
    return _ASSIGNMENT.match(word) is not None


# --- bash -----------------------------------------------------------------------------


def _walk(root: tree_sitter.Node, *, leaves: bool = True) -> Iterator[tree_sitter.Node]:
    """Every node under ``root`` in document order, depth-bounded, without recursion
    (``leaves=False``: but anonymous leaves, the operators, quotes and keywords that are most
    of a tree's nodes, when nothing looks for them)."""
    stack: list[tuple[tree_sitter.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node
        if depth < _MAX_DEPTH:
            below = depth + 1
            if leaves:
                stack.extend([(c, below) for c in reversed(node.children)])
            else:
                stack.extend(
                    [(c, below) for c in reversed(node.children) if c.is_named or c.child_count]
                )


def _text(node: tree_sitter.Node) -> str:
    return _ORIGINAL.get()[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _word(node: tree_sitter.Node) -> str:
    """A word's value as the program sees it (quotes removed where they are whole)."""
    text = _text(node)
    if node.type == "raw_string" and len(text) >= 2:
        return text[1:-1]
    if node.type == "string" and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if node.type == "concatenation":
        return "".join(_word(child) for child in node.children)
    return text


_BASH_ARGUMENT_SKIP = frozenset(
    {"variable_assignment", "file_redirect", "herestring_redirect", "heredoc_redirect", "comment"}
)


def _bash_command(node: tree_sitter.Node) -> Command | None:
    words: list[str] = []
    for child in node.children:
        if child.type in _BASH_ARGUMENT_SKIP or not child.is_named:
            continue
        if child.type == "command_name":
            words.append(_word(child.children[0]) if child.children else _text(child))
        else:
            words.append(_word(child))
    if not words:
        return None
    return _command_of(words, _one_line(_text(node)))


def _writes_bash(node: tree_sitter.Node) -> bool:
    """A redirect of output into a file (``2>&1`` and ``> /dev/null`` write nothing)."""
    operator = next((c for c in node.children if not c.is_named), None)
    if operator is None or operator.type in ("<", "<<", "<<<", "<&", "<<-", "<>"):
        return False
    destination = node.child_by_field_name("destination")
    if destination is None:
        return False
    target = _word(destination)
    if operator.type in (">&", "<&") and (target.isdigit() or target == "-"):
        return False
    return target not in _DEV_NULL


_BASH_STATEMENTS = frozenset({"program", "compound_statement", "subshell", "do_group"})


if TYPE_CHECKING:
    # A candidate for the deciding command: its node, and the pipeline it ends (for the text).
    _Candidate = tuple[tree_sitter.Node, tree_sitter.Node | None]


def _bash_decide(node: tree_sitter.Node, pipefail: bool, depth: int = 0) -> list[_Candidate]:
    """The command nodes whose exit status is ``node``'s, most decisive last."""
    if depth > _MAX_DEPTH:
        return []
    kind = node.type
    if kind == "command":
        return [(node, None)]
    if kind in _BASH_STATEMENTS:
        out: list[_Candidate] = []
        for child in node.named_children:
            if child.type not in ("comment", "heredoc_body"):
                out.extend(_bash_decide(child, pipefail, depth + 1))
        return out
    if kind == "list":
        named = [c for c in node.children if c.is_named]
        operator = next((c.type for c in node.children if not c.is_named), "&&")
        if operator == "||" and named:
            # "go test || true": the fallback is not what the call was for.
            return _bash_decide(named[0], pipefail, depth + 1)
        out = []
        for child in named:
            out.extend(_bash_decide(child, pipefail, depth + 1))
        return out
    if kind == "pipeline":
        parts = [c for c in node.named_children if c.type != "comment"]
        if not parts:
            return []
        joined = _joined_list(node)
        if joined is not None and joined[1] == "||":
            # "a || b 2>&1 | c" is "a || (b 2>&1 | c)": the fallback is not what it was for.
            return _bash_decide(joined[0], pipefail, depth + 1)
        stages = [_bash_decide(p, pipefail, depth + 1) for p in parts]
        found = next(
            (f for f in reversed(stages) if f and _name_of(f[-1][0]) not in _FILTERS),
            stages[0] if pipefail else stages[-1],
        )
        return [(found[-1][0], node)] if found else []
    if kind in ("redirected_statement", "negated_command"):
        body = node.named_children[0] if node.named_children else None
        return _bash_decide(body, pipefail, depth + 1) if body is not None else []
    if kind in ("variable_assignment", "variable_assignments", "declaration_command"):
        return []
    if kind in ("function_definition", "comment", "heredoc_body", "ERROR"):
        return []
    # Loops, conditionals, case: their last statement.
    for child in reversed(node.named_children):
        found = _bash_decide(child, pipefail, depth + 1)
        if found:
            return found
    return []


def _name_of(node: tree_sitter.Node) -> str:
    name = next((c for c in node.children if c.type == "command_name"), None)
    return _program(_text(name)).lower() if name is not None else ""


def _bash_deciding(root: tree_sitter.Node, pipefail: bool) -> Command | None:
    """The deciding command, built only for the one chosen (a script can hold hundreds)."""
    candidates = [c for c in _bash_decide(root, pipefail) if _name_of(c[0])]
    chosen = next((c for c in reversed(candidates) if _name_of(c[0]) not in _SETUP), None)
    if chosen is None:
        chosen = candidates[-1] if candidates else None
    if chosen is None:
        return None
    command = _bash_command(chosen[0])
    if command is None or chosen[1] is None:
        return command
    # A reason names the whole pipeline ("go test ./... | tail -3"), not its last stage.
    stages = []
    for part in chosen[1].named_children:
        found = _bash_decide(part, pipefail) if part.type != "comment" else []
        if found:
            stages.append(_one_line(_text(found[-1][0])))
    return msgspec.structs.replace(command, text=" | ".join(stages))


def _pick(candidates: list[Command], setup: frozenset[str]) -> Command | None:
    for command in reversed(candidates):
        if command.program.lower() not in setup:
            return command
    return candidates[-1] if candidates else None


def _bash(root: tree_sitter.Node) -> Script:
    commands: list[Command] = []
    places: list[tuple[int, int]] = []
    pipelines: list[tree_sitter.Node] = []
    writes = False
    for node in _walk(root, leaves=False):
        kind = node.type
        if kind == "command":
            command = _bash_command(node)
            if command is not None:
                commands.append(command)
                places.append((node.start_byte, node.end_byte))
                if command.program == "tee" or (
                    command.program == "sed"
                    and any(w.startswith(("-i", "--in-place")) for w in command.words)
                ):
                    writes = True
        elif kind == "file_redirect":
            writes = writes or _writes_bash(node)
        elif kind == "pipeline":
            pipelines.append(node)
    pipefail = any(c.program == "set" and "pipefail" in c.words for c in commands)
    deciding = _bash_deciding(root, pipefail)
    if deciding is None and root.has_error:
        return _fallback(_text(root))
    errexit = any(c.program == "set" and _errexit(c.words) for c in commands)
    carrying: set[tuple[int, int]] = set()
    _bash_carry(root, True, _Shell(pipefail, errexit), carrying, 0)
    carried = tuple(place in carrying for place in places)
    piped_into = _piped_into(pipelines, places, commands)
    hidden_by_pipe: tuple[bool, ...] = (False,) * len(commands)
    if not pipefail and any(piped_into):
        # What "set -o pipefail" would carry and the script does not: only a pipe hid it.
        with_pipefail: set[tuple[int, int]] = set()
        _bash_carry(root, True, _Shell(True, errexit), with_pipefail, 0)
        hidden_by_pipe = tuple(
            place in with_pipefail and not reaches
            for place, reaches in zip(places, carried, strict=True)
        )
    return Script(
        commands=tuple(commands),
        deciding=deciding,
        writes=writes,
        carried=carried,
        piped_into=piped_into,
        hidden_by_pipe=hidden_by_pipe,
    )


def _joined_list(
    pipeline: tree_sitter.Node,
) -> tuple[tree_sitter.Node, str, tree_sitter.Node] | None:
    """For a pipeline tree-sitter read as ``(a && b 2>&1) | c`` (a redirect on the last command
    of a list before a pipe), the list's left side, its operator and its last command: the
    shell reads ``a && (b 2>&1 | c)``, the pipe takes only the last command."""
    parts = [c for c in pipeline.named_children if c.type != "comment"]
    if len(parts) < 2:
        return None
    first = parts[0]
    if first.type == "redirected_statement" and first.named_children:
        first = first.named_children[0]
    if first.type != "list":
        return None
    named = [c for c in first.named_children if c.type not in ("comment", "heredoc_body")]
    operator = next((c.type for c in first.children if not c.is_named), "&&")
    if len(named) != 2:
        return None
    return named[0], operator, named[1]


def _piped_into(
    pipelines: list[tree_sitter.Node],
    places: list[tuple[int, int]],
    commands: list[Command],
    *,
    walked: bool = False,
) -> tuple[tuple[Command, ...], ...]:
    """Per command, the commands of the later stages of the pipelines it is a stage of
    (``pipelines`` in document order, as the walk found them; ``walked``: each stage's
    commands found by walking it, as the tests compare)."""
    out: list[tuple[Command, ...]] = [() for _ in commands]
    if not pipelines:
        return tuple(out)
    at = {place: i for i, place in enumerate(places)}
    order = sorted(range(len(places)), key=places.__getitem__)
    starts = [places[i][0] for i in order]
    # An empty command (error recovery) at a stage's end could be the next stage's: bytes
    # cannot tell, the tree can.
    by_bytes = not walked and all(start < end for start, end in places)

    def inside(stage: tree_sitter.Node) -> list[int]:
        """The commands of a stage, in the walk's order."""
        if not by_bytes:
            return [
                at[(n.start_byte, n.end_byte)]
                for n in _walk(stage, leaves=False)
                if n.type == "command" and (n.start_byte, n.end_byte) in at
            ]
        # Those inside its bytes (a command inside a node's bytes is under it): found by
        # their starts, not by walking each stage again.
        found: list[int] = []
        for k in range(bisect_left(starts, stage.start_byte), len(starts)):
            if starts[k] >= stage.end_byte:
                break
            if places[order[k]][1] <= stage.end_byte:
                found.append(order[k])
        return sorted(found)

    for node in pipelines:
        stages = [inside(stage) for stage in _stages(node)]
        for k, stage_commands in enumerate(stages):
            later = tuple(commands[j] for rest in stages[k + 1 :] for j in rest)
            for i in stage_commands:
                out[i] = later  # an inner pipeline's stages come later in the walk: they win
    return tuple(out)


def _stages(pipeline: tree_sitter.Node) -> list[tree_sitter.Node]:
    """A pipeline's stages: for ``a && b 2>&1 | c``, ``b`` and ``c`` (only b is piped)."""
    joined = _joined_list(pipeline)
    parts = [c for c in pipeline.named_children if c.type != "comment"]
    return [joined[2], *parts[1:]] if joined is not None else parts


def _errexit(words: tuple[str, ...]) -> bool:
    """``set -e``, ``set -euo pipefail``, ``set -o errexit``."""
    flags = [w for w in words if w.startswith("-") and not w.startswith("--")]
    return "errexit" in words or any("e" in w[1:] for w in flags if w != "-o")


class _Shell(msgspec.Struct, frozen=True):
    pipefail: bool
    errexit: bool


def _always_fails(node: tree_sitter.Node) -> bool:
    """Whether a fallback makes the script fail anyway (``|| exit 1``, ``|| false``)."""
    found = _bash_decide(node, False)
    if not found:
        return False
    command = _bash_command(found[-1][0])
    if command is None:
        return False
    if command.program == "false":
        return True
    if command.program in ("exit", "return"):
        return bool(command.words) and command.words[0] not in ("0", "$?")
    return False


def _bash_carry(
    node: tree_sitter.Node, carries: bool, shell: _Shell, out: set[tuple[int, int]], depth: int
) -> None:
    """Add to ``out`` every command node under ``node`` whose failure reaches the script's exit
    status, given whether ``node``'s own failure does (``carries``)."""
    if not carries or depth > _MAX_DEPTH:
        return  # nothing under a node whose failure does not reach the status reaches it
    kind = node.type
    if kind == "command":
        out.add((node.start_byte, node.end_byte))  # not the $(…) in its words
        return
    named = [c for c in node.named_children if c.type not in ("comment", "heredoc_body")]
    if kind in _BASH_STATEMENTS:
        for i, child in enumerate(named):
            last = i == len(named) - 1
            _bash_carry(child, carries and (last or shell.errexit), shell, out, depth + 1)
        return
    if kind == "list":
        operator = next((c.type for c in node.children if not c.is_named), "&&")
        if operator == "||" and len(named) == 2:
            _bash_carry(named[0], carries and _always_fails(named[1]), shell, out, depth + 1)
            _bash_carry(named[1], carries, shell, out, depth + 1)
            return
        for child in named:
            _bash_carry(child, carries, shell, out, depth + 1)
        return
    if kind == "pipeline":
        joined = _joined_list(node)
        if joined is not None:
            # "a && b 2>&1 | c" is "a && (b 2>&1 | c)": a's failure is the list's status.
            left, operator, right = joined
            _bash_carry(left, carries and operator == "&&", shell, out, depth + 1)
            named = [right, *named[1:]]
        for i, child in enumerate(named):
            last = i == len(named) - 1
            _bash_carry(child, carries and (last or shell.pipefail), shell, out, depth + 1)
        return
    if kind == "redirected_statement":
        for i, child in enumerate(named):
            _bash_carry(child, carries and i == 0, shell, out, depth + 1)
        return
    if kind in ("if_statement", "elif_clause", "else_clause"):
        # A condition's failure chooses a branch; a branch's last statement is the status.
        body = [c for c in named if c.type not in ("elif_clause", "else_clause")]
        if kind != "else_clause" and body:
            body = body[1:]  # the condition
        for i, child in enumerate(body):
            last = i == len(body) - 1
            _bash_carry(child, carries and (last or shell.errexit), shell, out, depth + 1)
        for child in named:
            if child.type in ("elif_clause", "else_clause"):
                _bash_carry(child, carries, shell, out, depth + 1)
        return
    # Negations, loops (an earlier pass is hidden by the last), case, substitutions, functions:
    # nothing under them reaches the status.


# --- PowerShell -----------------------------------------------------------------------

_PS_WRITERS = frozenset(
    {"set-content", "add-content", "out-file", "new-item", "remove-item", "copy-item"}
    | {"move-item", "rename-item", "clear-content", "set-itemproperty", "ni", "sc", "ac"}
    | {"rm", "del", "cp", "copy", "mv", "move", "md", "mkdir"}
)


def _ps_command(node: tree_sitter.Node) -> Command | None:
    words: list[str] = []
    for child in node.children:
        if child.type in ("command_name", "command_name_expr"):
            text = _text(child)  # a program by path may be quoted: & "C:\Git\git.exe"
            words.append(text[1:-1] if len(text) >= 2 and text[0] == text[-1] in "'\"" else text)
        elif child.type == "command_elements":
            for element in child.named_children:
                if element.type in ("command_argument_sep", "redirection", "comment"):
                    continue
                text = _text(element)
                if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                    text = text[1:-1]
                words.append(text)
    if not words:
        return None
    return _command_of(words, _one_line(_text(node)))


def _native(command: Command) -> bool:
    name = command.program.lower()
    return not _CMDLET.match(command.program) and name not in _PS_ALIASES


def _powershell(root: tree_sitter.Node) -> Script:
    commands: list[Command] = []
    writes = False
    for node in _walk(root):
        if node.type == "command":
            command = _ps_command(node)
            if command is not None:
                commands.append(command)
                writes = writes or command.program.lower() in _PS_WRITERS
        elif node.type == "file_redirection_operator" and not writes:
            target = node.next_named_sibling
            writes = target is None or _text(target).strip() not in _DEV_NULL
    native = [c for c in commands if _native(c)]
    deciding = _pick(native, _SETUP_PS) or _pick(commands, _SETUP_PS)
    # $LASTEXITCODE is the last native program's; a cmdlet (Invoke-Pester) sets none.
    carried = tuple(c is deciding and _native(c) for c in commands)
    return Script(commands=tuple(commands), deciding=deciding, writes=writes, carried=carried)
