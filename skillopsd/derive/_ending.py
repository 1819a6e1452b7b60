"""How a session ended, as facts on its spans for the verdict rule to weigh.

The verdict itself is computed by the sessions projection (``projections/verdict.py``), because
its parameters are a ``PolicySet`` event; the deriver only states facts:

- every TOOL and SKILL span with an outcome gets ``skillops.turns_from_end`` (0 in the session's
  last turn), and so does a call that ran but whose outcome is unknown (a run whose hidden
  status its output did not tell, ``skillops.result.masked``): it neither passed nor failed,
  but it came after what came before it; a call in a turn that did some work (a call that is
  not a look nor bookkeeping) also gets ``skillops.work_turns_from_end``, the same count over
  such turns only: a last "ok thanks" or "show me git status" does not move a failure before
  it out of the verdict's window;
- a failed or blocked one also gets ``skillops.call.kind`` (the tool; for a shell command its
  deciding program and subcommand, read by a shell parser; for an edit the file it edits),
  ``skillops.resolved`` (a later call of the same kind succeeded: the agent or the user got
  past it; a failed test or lint run is keyed by its runner and resolved only by a later pass
  covering what failed, see ``_runners.covers``; after only a narrower pass,
  ``skillops.call.narrower`` names it), ``skillops.call.probe`` (it only looked: a read, a
  search, a ``grep`` that found nothing, a program that is not there (exit 127); its failure
  is an answer, not a setback), ``skillops.call.noop`` (an edit that would have changed nothing),
  ``skillops.call.sandboxed`` (a command the sandbox refused an operation: ``bind: operation
  not permitted``), and what the reason line names: ``skillops.call.what`` (``go test
  ./...``, ``Edit main.go``), ``skillops.call.why`` (the first line of its error) and
  ``skillops.call.turn`` (the number of its top-level turn);
- a bookkeeping call (a to-do list, a plan, a topic) gets ``skillops.call.bookkeeping``: it never
  decides a verdict and never hides what came before it;
- the session's last top-level turn gets ``skillops.turn.number`` and ``skillops.turn.end``:
  ``answered`` (its last model response is text with no call after it), ``empty`` (its last
  response has neither text nor calls: the agent ended the turn saying nothing), ``pending``
  (it ends with a call that never got a result, stamped ``skillops.call.pending``) or
  ``silent`` (no final answer, nothing pending: the agent was still at work).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ._kinds import tool_kind
from ._outcome import is_noop_edit
from ._runners import Run, covers, read_output, runs_in
from ._shell import SHELL_TOOLS, Command, arguments_of, call_script, deciding_command, read_script
from ._tree import Span, SpanTree

# A command that failed because the sandbox refused it an operation (a socket, a file outside
# the workspace), or because the machine cannot run what it built (a test binary for another
# OS: "exec format error"): the environment's limit, not the agent's setback.
_SANDBOXED = re.compile(r"operation not permitted|exec format error", re.IGNORECASE)
# A command that is not there (exit 127, "command not found"): nothing ran, nothing changed; like
# a look-up that found nothing, it is no setback.
_NOT_FOUND = re.compile(
    r"command not found|is not recognized as (?:an internal or external command|the name of a"
    r" cmdlet)|exit(?:ed with)? code:? 127\b|exited with code 127\b",
    re.IGNORECASE,
)
# Calls that keep the agent's own notes (to-do lists, plans, topics, memories): they change
# nothing the user asked for.
BOOKKEEPING = frozenset(
    {
        # Claude Code
        "TodoWrite",
        "TodoRead",
        "TaskCreate",
        "TaskUpdate",
        "TaskList",
        "TaskGet",
        # Codex
        "update_plan",
        # Copilot CLI
        "report_intent",
        "update_todo",
        "task_complete",
        "store_memory",
        # Gemini CLI
        "write_todos",
        "update_topic",
        "save_memory",
    }
)
# Calls by which an agent says it is done, with its summary (Copilot CLI's autopilot, Gemini
# CLI's subagents): an answer, not a call that expects more work.
_FINISHERS = frozenset({"task_complete", "complete_task"})
# Edits: one family, whatever the tool, keyed by the file edited.
_EDITS = frozenset(
    {"Edit", "MultiEdit", "Write", "NotebookEdit", "apply_patch", "str_replace_editor"}
    | {"edit", "create", "replace", "write_file", "str_replace"}
)
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+?)\s*$", re.MULTILINE)
# Tools that only look; a Copilot ``str_replace_editor`` call looks when its command is "view".
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
    "read_file",
    "read_many_files",
    "grep_search",
    "search_file_content",
    "list_directory",
    "google_web_search",
    "web_fetch",
}
# Programs that only look; "git diff" style entries name a program and subcommand.
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
    "cd",
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
    # PowerShell
    "Get-ChildItem",
    "Get-Content",
    "Get-Item",
    "Get-Location",
    "Select-Object",
    "Select-String",
    "Where-Object",
    "Measure-Object",
    "Sort-Object",
    "Format-List",
    "Format-Table",
    "Out-String",
    "Test-Path",
    "Write-Host",
    "Write-Output",
    "Resolve-Path",
    "Split-Path",
    "Join-Path",
    "Get-Command",
}


def _edited_files(tool: str, arguments: object) -> list[str] | None:
    """The files an edit call names (by file name), ``[]`` when unknown; None for a look-up."""
    if isinstance(arguments, str) and tool == "apply_patch" and "*** " in arguments[:200]:
        return sorted({PurePosixPath(p.replace("\\", "/")).name for p in _patch_paths(arguments)})
    value = arguments_of(arguments) or {}
    if tool == "str_replace_editor" and value.get("command") == "view":
        return None
    if tool == "apply_patch":
        patch = value.get("input", value.get("patch"))
        if isinstance(patch, str):
            names = {PurePosixPath(p.replace("\\", "/")).name for p in _patch_paths(patch)}
            return sorted(names)
    for key in ("file_path", "path", "notebook_path", "absolute_path"):
        path = value.get(key)
        if isinstance(path, str) and path:
            return [PurePosixPath(path.replace("\\", "/")).name]
    return []


def _patch_paths(patch: str) -> list[str]:
    return _PATCH_FILE.findall(patch)


def is_probe(tool: str, arguments: object) -> bool:
    """Whether a call only looked (read, searched, listed) and changed nothing."""
    if tool in _LOOKING_TOOLS:
        return True
    if tool == "str_replace_editor":
        return _edited_files(tool, arguments) is None
    found = call_script(tool, arguments)
    if found is None:
        return False
    script = read_script(*found)
    if script.writes or not script.commands:
        return False
    return all(_looks(c) for c in script.commands)


# A subcommand's own verbs that change something: ``gh issue create``, ``git branch -D``.
_CHANGING = frozenset({"create", "edit", "merge", "close", "comment", "delete", "reopen", "-D"})


def _looks(command: Command) -> bool:
    if command.subcommand is not None:
        return command.key in _LOOKING and not _CHANGING.intersection(command.words[:4])
    return command.program in _LOOKING


def call_keys(tool: str, arguments: object) -> tuple[str, ...]:
    """What counts as "the same kind of call": the keys a later success must cover.

    A shell call is keyed by the command that decides its exit status (``cd w && go test
    ./...`` is ``Bash:go test``); an edit by the files it edits, whatever the tool
    (``edit:main.go``: a failed ``Edit`` retried as ``Write`` or ``apply_patch`` is the same
    kind); anything else by its tool.
    """
    if tool in _EDITS:
        files = _edited_files(tool, arguments)
        if files is None:
            return (f"{tool}:view",)
        return tuple(f"edit:{name}" for name in files) or ("edit",)
    found = call_script(tool, arguments)
    if found is None:
        return (tool,)
    deciding = deciding_command(*found)
    return (f"{tool}:{deciding.key}",) if deciding is not None else (tool,)


def call_kind(tool: str, arguments: object) -> str:
    """The kind of a call as one string (its keys joined; see :func:`call_keys`)."""
    return " ".join(call_keys(tool, arguments))


def describe(tool: str, arguments: object) -> str:
    """What a reason line calls the call: ``go test ./...``, ``Edit main.go``, ``Read``."""
    found = call_script(tool, arguments)
    if found is not None:
        deciding = deciding_command(*found)
        if deciding is not None and deciding.text:
            text = deciding.text
            return text if len(text) <= 80 else text[:79] + "…"
        return tool
    if tool in _EDITS:
        files = _edited_files(tool, arguments)
        if files:
            more = f" (+{len(files) - 1})" if len(files) > 1 else ""
            return f"{tool} {files[0]}{more}"
    return tool


def describe_pending(tool: str, arguments: object) -> str:
    """What a reason calls a call still waiting for its result: a script whole (up to 80
    characters), since what waits (for an approval, say) is any of its commands, not only the
    one that would decide its status (``git add -A && git commit … && git log`` waits on the
    commit more likely than on the log; review K10)."""
    found = call_script(tool, arguments)
    if found is None:
        return describe(tool, arguments)
    script, cut = found[0], False
    if "<<" in script:  # a heredoc's body (a commit message, a file) is no command
        script, cut = script[: script.index("<<")], True
    lines = [" ".join(line.split()) for line in script.splitlines()]
    text = "; ".join(line for line in lines if line)
    if not text:
        return describe(tool, arguments)
    if len(text) > 79 or cut:
        return text[:79].rstrip() + " …"
    return text


def _first_line(text: object, limit: int = 100) -> str:
    if not isinstance(text, str):
        return ""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def mark_ending(tree: SpanTree) -> None:
    """Stamp the facts the verdict weighs (see the module docstring)."""
    spans = tree.spans
    parents = {s.parent for s in spans.values()}
    # A built-in command typed after the work (/exit, /model, /clear) is no turn of it.
    top_turns = [
        s
        for s in spans.values()
        if s.kind == "CHAIN"
        and s.parent not in spans
        and (s.span_id in parents or not _is_command(s.attributes.get("gen_ai.prompt")))
    ]
    # Turns in time order; the tree's first-seen order breaks ties (and orders untimed turns).
    order = {s.span_id: i for i, s in enumerate(spans.values())}
    top_turns.sort(key=lambda s: (s.start or "", order[s.span_id]))
    rank = {s.span_id: len(top_turns) - 1 - i for i, s in enumerate(top_turns)}
    every = [s for s in spans.values() if s.kind in ("TOOL", "SKILL")]
    cache: dict[str, str | None] = {}
    tops = {s.span_id: _top_turn(spans, s, cache) for s in every}
    calls = [s for s in every if s.outcome is not None]
    calls.sort(key=lambda s: (s.start or "", order[s.span_id]))
    # The same count over the turns that did some work: a turn that only looked (a read, a
    # search, ``git status``), kept the to-do list, or had no call at all ("ok thanks") is no
    # turn of the work, so a failure before it stays in the window the verdict weighs
    # (review K12).
    # (One working call makes its turn a working one: the rest of it is not read.)
    worked: set[str | None] = set()
    for s in every:
        turn = tops.get(s.span_id)
        if (
            turn not in worked
            and (s.outcome is not None or "skillops.result.masked" in s.attributes)
            and _tool(s) not in BOOKKEEPING
            and not is_probe(_tool(s), _arguments(s))
        ):
            worked.add(turn)
    working = [t for t in top_turns if t.span_id in worked]
    work_rank = {t.span_id: len(working) - 1 - i for i, t in enumerate(working)}
    for span in every:
        turn = tops.get(span.span_id)
        if span.outcome is None and "skillops.result.masked" in span.attributes and turn in rank:
            span.attributes["skillops.turns_from_end"] = rank[turn]
            if turn in work_rank:
                span.attributes["skillops.work_turns_from_end"] = work_rank[turn]
    # Keys only where they can matter: every failed or blocked call, and a success only when
    # its arguments mention every word of a key a failure needs (most do not: no parse).
    # A call that ran a test or lint runner is keyed by the runner, and remembers its runs:
    # a later pass resolves it only when it covers what failed.
    ran: dict[int, tuple[Run, ...]] = {}
    keys: list[tuple[str, ...] | None] = [None] * len(calls)
    for i, span in enumerate(calls):
        if span.outcome != "success":
            keys[i] = _keys(span, i, ran, failed=span.outcome == "failure")
    families = [_family(_tool(s)) for s in calls]
    needed: dict[str, set[tuple[str, ...]]] = {}  # family -> the words of each key it needs
    for i in range(len(calls)):
        for key in keys[i] or ():
            # "Bash:go test" needs "go" and "test"; "edit:a.go" needs "a.go"; "Read" nothing.
            words = tuple(key.split(":", 1)[1].split()) if ":" in key else ()
            needed.setdefault(families[i], set()).add(words)
    for i, span in enumerate(calls):
        wanted = needed.get(families[i]) if span.outcome == "success" else None
        if wanted:
            text = str(_arguments(span))
            if any(all(w in text for w in words) for words in wanted):
                keys[i] = _keys(span, i, ran, failed=False)
    last_success: dict[str, int] = {}  # key -> index of its last success
    for i, span in enumerate(calls):
        found = keys[i]
        if span.outcome == "success" and found is not None:
            for key in found:
                last_success[key] = i
            if found[0].startswith("edit"):
                last_success["edit"] = i
    for i, span in enumerate(calls):
        tool = _tool(span)
        if tool in BOOKKEEPING:
            span.attributes["skillops.call.bookkeeping"] = True
        turn = tops.get(span.span_id)
        if turn is not None and turn in rank:
            span.attributes["skillops.turns_from_end"] = rank[turn]
        if turn is not None and turn in work_rank:
            span.attributes["skillops.work_turns_from_end"] = work_rank[turn]
        found = keys[i]
        if span.outcome in ("failure", "blocked") and found is not None:
            arguments = _arguments(span)
            span.attributes["skillops.call.kind"] = " ".join(found)
            span.attributes["skillops.call.probe"] = is_probe(tool, arguments)
            failed_runs = ran.get(i) if span.outcome == "failure" else None
            if failed_runs:
                _resolve_runs(span, i, failed_runs, calls, ran)
            else:
                resolved = all(last_success.get(k, -1) > i for k in found)
                span.attributes["skillops.resolved"] = resolved
            error = span.attributes.get("skillops.result.error")
            if span.outcome == "failure" and _family(tool) == "edit" and is_noop_edit(error):
                span.attributes["skillops.call.noop"] = True
            if span.outcome == "failure" and tool in SHELL_TOOLS:
                # The whole output: a clipped error can end before the sandbox's refusal.
                if _SANDBOXED.search(span.output or str(error)):
                    span.attributes["skillops.call.sandboxed"] = True
                elif _NOT_FOUND.search(str(error)[:4000]):
                    span.attributes["skillops.call.probe"] = True  # looked for a program
            what = describe(tool, arguments)
            if failed_runs and not any(r.text in what for r in failed_runs):
                what = failed_runs[0].text  # "go test ./...; git stash pop": the test failed
            span.attributes["skillops.call.what"] = what
            summary = span.attributes.get("skillops.result.summary")
            if failed_runs and not summary:
                summary = read_output(span.output or "").line  # "--- FAIL: TestX", not a header
            why = _first_line(summary or error)
            if why:
                span.attributes["skillops.call.why"] = why
            if turn is not None and turn in rank:
                span.attributes["skillops.call.turn"] = _turn_number(
                    spans[turn], len(top_turns) - rank[turn]
                )
    if top_turns:
        last = top_turns[-1]
        _mark_last_turn(tree, last, _turn_number(last, len(top_turns)), every, tops, order)


def _keys(span: Span, i: int, ran: dict[int, tuple[Run, ...]], *, failed: bool) -> tuple[str, ...]:
    """A call's keys (:func:`call_keys`), by its runners where it ran any; its runs go in
    ``ran``: for a failure the runs that can have failed it (those whose status it carried, or
    whose hidden status its output showed failing), for a success every run (all passed)."""
    tool, arguments = _tool(span), _arguments(span)
    found = call_script(tool, arguments)
    runs = runs_in(*found) if found is not None else ()
    if not runs or found is None:
        return call_keys(tool, arguments)
    deciding = read_script(*found).deciding  # parsed already, for its runs
    keys = (f"{tool}:{deciding.key}",) if deciding is not None else (tool,)
    if failed:
        # Read from its output: the runs whose status was hidden; else the runs whose status
        # it carried (or, when none did, the runs it was for: "go test | tail" timed out).
        hidden = span.attributes.get("skillops.result.masked") is not None
        runs = tuple(r for r in runs if r.carried != hidden) or (() if hidden else runs)
    if not runs:
        return keys
    ran[i] = runs
    runner_keys = tuple(dict.fromkeys(f"{tool}:{r.runner}" for r in runs))
    return runner_keys if failed else tuple(dict.fromkeys(keys + runner_keys))


def _resolve_runs(
    span: Span, i: int, failed: tuple[Run, ...], calls: list[Span], ran: dict[int, tuple[Run, ...]]
) -> None:
    """Whether a later pass covers every run that failed in call ``i`` (``skillops.resolved``);
    if one ran the same runner over less, ``skillops.call.narrower`` names it."""
    failures = read_output(span.output or "").failed
    later = [(j, r) for j in sorted(ran) if j > i and calls[j].outcome == "success" for r in ran[j]]
    narrower = ""
    for run in failed:
        if any(covers(r, run, failures) for _, r in later):
            continue
        same = [r for _, r in later if r.runner == run.runner]
        narrower = same[-1].text if same else ""
        span.attributes["skillops.resolved"] = False
        if narrower:
            span.attributes["skillops.call.narrower"] = narrower
        return
    span.attributes["skillops.resolved"] = True


def _turn_number(turn: Span, ordinal: int) -> int:
    """The number a reason names a turn by: the one its span is named and counted by
    (``CHAIN turn 7``, ``turns 7``), which counts built-in commands (/model, /effort) too;
    the ordinal among the turns of the work only when the deriver numbered none."""
    number = turn.attributes.get("skillops.turn")
    return number if isinstance(number, int) and not isinstance(number, bool) else ordinal


def _mark_last_turn(
    tree: SpanTree,
    turn: Span,
    number: int,
    calls: list[Span],
    tops: dict[str, str | None],
    order: dict[str, int],
) -> None:
    """How the last turn ended: answered, pending (a call never got a result) or silent."""
    spans = tree.spans
    turn.attributes["skillops.turn.number"] = number
    mine = [s for s in calls if tops.get(s.span_id) == turn.span_id]
    pending = [
        s
        for s in mine
        if s.outcome is None
        and "skillops.not_run" not in s.attributes
        and "skillops.result.masked" not in s.attributes  # ran; its outcome is unknown
        and not s.attributes.get("skillops.result.lost")
    ]
    responses = [s for s in spans.values() if s.kind == "LLM" and s.parent == turn.span_id]
    responses.sort(key=lambda s: (s.start or "", order[s.span_id]))
    last = responses[-1] if responses else None
    # A response that made calls (even a to-do update) expects to go on: it is no answer,
    # unless its call is the agent's own "done" (Copilot's task_complete carries the summary).
    made = [s for s in mine if last is not None and s.parent == last.span_id]
    finished = bool(made) and all(_tool(s) in _FINISHERS and s.outcome == "success" for s in made)
    called = bool(made) and not finished
    text = last.attributes.get("gen_ai.output.text") if last is not None else None
    answered = finished or (isinstance(text, str) and bool(text.strip()) and not called)
    if answered:
        turn.attributes["skillops.turn.end"] = "answered"
    elif last is not None and not called and not pending:
        # The agent ended its turn with an empty response: finished, with nothing to say.
        turn.attributes["skillops.turn.end"] = "empty"
    elif pending:
        turn.attributes["skillops.turn.end"] = "pending"
        for span in pending:
            span.attributes["skillops.call.pending"] = True
            span.attributes["skillops.call.what"] = describe_pending(_tool(span), _arguments(span))
            span.attributes["skillops.call.turn"] = number
    else:
        turn.attributes["skillops.turn.end"] = "silent"
        if turn.attributes.get("skillops.api_error") or (
            last is not None and last.attributes.get("skillops.api_error")
        ):
            turn.attributes["skillops.turn.api_error"] = True


def _is_command(prompt: object) -> bool:
    """Whether a turn's prompt is a slash command (``<command-name>/exit</command-name>``)."""
    if not isinstance(prompt, str):
        return True  # a turn with no prompt and nothing in it
    text = prompt.lstrip()
    return text.startswith(("<command-name>", "<command-message>", "/"))


def _family(tool: str) -> str:
    """Tools whose calls can resolve each other share a family (every edit tool is ``edit``)."""
    if tool in _EDITS or tool_kind(tool, "TOOL") == "edit":
        return "edit"
    return tool


def _tool(span: Span) -> str:
    return str(span.attributes.get("gen_ai.tool.name", span.name))


def _arguments(span: Span) -> object:
    # The whole input where the deriver kept it: a script's deciding command can sit past the
    # clip of the emitted attribute.
    if span.arguments is not None:
        return span.arguments
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
