"""How a session ended, as facts on its spans for the verdict rule to weigh.

Every TOOL and SKILL span with an outcome gets ``skillops.turns_from_end`` (0 in the session's
last turn). A failed or blocked one also gets ``skillops.call.kind`` (the tool, and for a shell
command its program and subcommand), ``skillops.resolved`` (a later call of the same kind
succeeded: the agent or the user got past it) and ``skillops.call.probe`` (it only looked:
a read, a search, a ``grep`` that found nothing; its failure is an answer, not a setback).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from ._tree import Span, SpanTree

_SHELLS = {
    "Bash",
    "exec_command",
    "shell_command",
    "shell",
    "local_shell_call",
    "bash",
    "powershell",
    "run_shell_command",
}
# Words before the program that do not name it: wrappers and variable assignments.
_WRAPPERS = {"env", "sudo", "command", "time", "nice", "nohup", "exec", "xargs"}
# Programs whose first argument is a subcommand worth telling apart (``go test``, ``go build``).
_SUBCOMMANDS = {
    "git",
    "go",
    "gh",
    "npm",
    "pnpm",
    "yarn",
    "bun",
    "cargo",
    "docker",
    "kubectl",
    "uv",
    "pip",
    "poetry",
    "make",
    "just",
    "terraform",
    "dotnet",
    "mvn",
    "gradle",
    "swift",
    "deno",
    "brew",
}
# Tools and programs that only look; "git diff" style entries name a program and subcommand.
_LOOKING_TOOLS = {
    "Read",
    "Glob",
    "Grep",
    "LS",
    "WebFetch",
    "WebSearch",
    "web_search",
    "ToolSearch",
    "list_mcp_resources",
    "list_mcp_resource_templates",
    "read_mcp_resource",
    "view_image",
    "view",
    "grep",
    "glob",
    # Gemini CLI
    "read_file",
    "read_many_files",
    "grep_search",
    "search_file_content",
    "list_directory",
    "google_web_search",
    "web_fetch",
}
_LOOKING = {
    "ls",
    "cat",
    "head",
    "tail",
    "sed",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ag",
    "ack",
    "find",
    "fd",
    "wc",
    "nl",
    "echo",
    "printf",
    "pwd",
    "which",
    "type",
    "test",
    "[",
    "diff",
    "cmp",
    "stat",
    "file",
    "tree",
    "jq",
    "awk",
    "sort",
    "uniq",
    "cut",
    "tr",
    "true",
    "date",
    "env",
    "sleep",
    "git diff",
    "git show",
    "git log",
    "git status",
    "git rev-parse",
    "git ls-files",
    "git grep",
    "git blame",
    "git branch",
    "git remote",
    "git config",
    "gh pr",
    "gh issue",
    "gh run",
    "gh api",
    "go env",
    "go list",
    "go version",
    "go doc",
}
# Output to a file or an in-place edit changes something; 2>&1 and >/dev/null do not.
_WRITES = re.compile(r">|\bsed\s+(?:-\w+\s+)*-i")
_HARMLESS_REDIRECT = re.compile(r"\d*>&\d|\d*>\s*/dev/null")
# Shell words: quoted strings, operators, whitespace, and runs of anything else (a regex, not
# shlex: this runs on every shell call of every session and shlex is ten times slower).
_TOKEN = re.compile(r"""'[^']*'?|"(?:\\.|[^"\\])*"?|&&|\|\||[;|&()\n]|[ \t]+|[^\s'";|&()]+""")
_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", "\n"}
_ASSIGNMENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")
_decoder = msgspec.json.Decoder()


def _command(arguments: object) -> str | None:
    """The shell command a call ran, from its JSON arguments."""
    if not isinstance(arguments, str):
        return None
    try:
        value = _decoder.decode(arguments)
    except msgspec.DecodeError:
        return None
    if not isinstance(value, dict):
        return None
    command = value.get("cmd", value.get("command"))
    if isinstance(command, list):
        # ["bash", "-lc", "<script>"]: the script is what ran.
        if len(command) == 3 and command[1] in ("-lc", "-c"):
            return str(command[2])
        return " ".join(str(part) for part in command)
    return command if isinstance(command, str) else None


def _segments(command: str) -> Iterator[list[str]]:
    """The words of each simple command in a script (split at ``&&``, ``||``, ``;``, ``|``).

    A generator: :func:`call_kind` usually needs only the first, and scripts can be long.
    """
    segment: list[str] = []
    word = ""
    for match in _TOKEN.finditer(command):
        token = match.group(0)
        if token.isspace() or token in _OPERATORS:
            if word:
                segment.append(word)
                word = ""
            if token in _OPERATORS and segment:
                yield segment
                segment = []
        elif token[0] in "'\"":
            word += token[1:-1] if len(token) > 1 and token[-1] == token[0] else token[1:]
        else:
            word += token
    if word:
        segment.append(word)
    if segment:
        yield segment


def _programs(command: str) -> Iterator[str]:
    """The program (and subcommand, for CLIs that have them) of each command in a script."""
    for segment in _segments(_HARMLESS_REDIRECT.sub(" ", command)):
        words = [w for w in segment if w not in _WRAPPERS and not _ASSIGNMENT.match(w)]
        if not words or words[0] == "cd":
            continue
        program = words[0].rsplit("/", 1)[-1]
        rest = [w for w in words[1:] if not w.startswith("-")]
        yield f"{program} {rest[0]}" if program in _SUBCOMMANDS and rest else program


def is_probe(tool: str, arguments: object) -> bool:
    """Whether a call only looked (read, searched, listed) and changed nothing."""
    if tool in _LOOKING_TOOLS:
        return True
    if tool not in _SHELLS:
        return False
    command = _command(arguments)
    if not command or _WRITES.search(_HARMLESS_REDIRECT.sub("", command)):
        return False
    programs = list(_programs(command))
    return bool(programs) and all(p in _LOOKING for p in programs)


def call_kind(tool: str, arguments: object) -> str:
    """What counts as "the same kind of call": the tool, and for a shell its program + subcommand.

    ``cd dir && go test ./...`` is ``Bash:go test``; a retry of it, whatever its flags, is the
    same kind, so a later success resolves the earlier failure.
    """
    if tool not in _SHELLS:
        return tool
    command = _command(arguments)
    first: str | None = None
    for program in _programs(command) if command else ():
        # In "git diff && go test ./...", the test is what the call was for.
        if program not in _LOOKING:
            return f"{tool}:{program}"
        first = first or program
    return f"{tool}:{first}" if first else tool


def mark_ending(tree: SpanTree) -> None:
    """Stamp every voting call with its distance from the last turn and whether it was resolved."""
    spans = tree.spans
    top_turns = [s for s in spans.values() if s.kind == "CHAIN" and s.parent not in spans]
    # Turns in time order; the tree's first-seen order breaks ties (and orders untimed turns).
    order = {s.span_id: i for i, s in enumerate(spans.values())}
    top_turns.sort(key=lambda s: (s.start or "", order[s.span_id]))
    rank = {s.span_id: len(top_turns) - 1 - i for i, s in enumerate(top_turns)}
    calls = [s for s in spans.values() if s.kind in ("TOOL", "SKILL") and s.outcome is not None]
    calls.sort(key=lambda s: (s.start or "", order[s.span_id]))
    # Only tools that failed or were blocked need kinds: shlex is too slow for every call.
    troubled = {_tool(s) for s in calls if s.outcome != "success"}
    kinds: list[str | None] = [
        call_kind(_tool(s), _arguments(s)) if _tool(s) in troubled else None for s in calls
    ]
    last_success: dict[str, int] = {}  # kind -> index of its last success
    for i, span in enumerate(calls):
        kind = kinds[i]
        if span.outcome == "success" and kind is not None:
            last_success[kind] = i
    tops: dict[str, str | None] = {}
    for i, span in enumerate(calls):
        turn = _top_turn(spans, span, tops)
        if turn is not None and turn in rank:
            span.attributes["skillops.turns_from_end"] = rank[turn]
        kind = kinds[i]
        if span.outcome in ("failure", "blocked") and kind is not None:
            span.attributes["skillops.call.kind"] = kind
            span.attributes["skillops.call.probe"] = is_probe(_tool(span), _arguments(span))
            span.attributes["skillops.resolved"] = last_success.get(kind, -1) > i


def _tool(span: Span) -> str:
    return str(span.attributes.get("gen_ai.tool.name", span.name))


def _arguments(span: Span) -> object:
    return span.attributes.get("gen_ai.tool.call.arguments")


def _top_turn(spans: dict[str, Span], span: Span, tops: dict[str, str | None]) -> str | None:
    """The id of the top-level turn a span belongs to (through any subagent nesting)."""
    path: list[str] = []
    turn: str | None = None
    current: Span | None = span
    while current is not None:
        if current.span_id in tops:
            turn = tops[current.span_id]
            break
        path.append(current.span_id)
        if current.kind == "CHAIN" and (current.parent is None or current.parent not in spans):
            turn = current.span_id
            break
        parent = spans.get(current.parent) if current.parent else None
        current = parent if parent is not None and parent.span_id not in path else None
    for span_id in path:
        tops[span_id] = turn
    return turn
