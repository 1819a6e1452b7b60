"""One replay run: a scratch folder, the setup, the agent's CLI under a timeout, and the
transcript it left in its store.

The agent runs in its own process group (``start_new_session``) so a timeout or Ctrl-C takes
down whatever it started, not only the process skillops spawned. No shell runs the agent;
``setup`` commands are the evals.yaml author's shell lines and run with ``/bin/sh -c``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from ..sources import STORES, resolve_roots
from ..sources._store import decode_head
from .agents import build_argv, folder_name, skill_path

# After SIGTERM the agent gets this long to exit before SIGKILL.
GRACE_SECONDS = 3.0
# How much of the agent's stderr a failed run keeps (the end, where the error is).
ERROR_TAIL = 2000
# A transcript counts as written by this run if modified no earlier than this before it.
MTIME_SLACK = 2.0

# completed: exit 0 and a transcript; failed: non-zero exit; timeout; no-transcript: exit 0
# but nothing in the store; error: could not start; interrupted: stopped by Ctrl-C.
STATUSES = ("completed", "failed", "timeout", "no-transcript", "error", "interrupted")


class RunSpec(msgspec.Struct, frozen=True):
    """What one run needs: the task, the version's SKILL.md, the agent and its command."""

    suite: str
    case: str
    version_hash: str
    tag: str
    repeat: int
    skill: str
    skill_text: str
    prompt: str
    fixture: str | None
    setup: list[str]
    timeout: float
    agent: str
    template: str


class RunOutcome(msgspec.Struct):
    """How a run ended and what it left."""

    spec: RunSpec
    status: str
    argv: list[str]
    exit_status: int | None
    wall_ms: int
    started_at: str
    transcripts: list[str] = []
    error: str = ""
    workdir: str = ""


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - ERROR_TAIL))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _cwd_of(path: Path) -> str | None:
    """The working folder a transcript names in its first records (Claude or Codex shape)."""
    try:
        with open(path, "rb") as fh:
            head = decode_head(fh.read(1 << 20))
    except OSError:
        return None
    for record in head:
        if not isinstance(record, dict):
            continue
        cwd = record.get("cwd")
        payload = record.get("payload")
        if not isinstance(cwd, str) and isinstance(payload, dict):
            cwd = payload.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def find_transcripts(agent: str, workdir: Path, since: float, env: Mapping[str, str]) -> list[Path]:
    """Transcript files in ``agent``'s store, modified since ``since``, whose cwd is ``workdir``."""
    store = STORES[agent]
    want = os.path.realpath(workdir)
    found = []
    for root in resolve_roots(env=env):
        if root.agent != agent or not root.path.is_dir():
            continue
        for path in store.iter_files(root.path):
            try:
                if path.stat().st_mtime < since - MTIME_SLACK:
                    continue
            except OSError:
                continue
            cwd = _cwd_of(path)
            if cwd is not None and os.path.realpath(cwd) == want:
                found.append(path)
    return sorted(found)


def utc_stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class Runner:
    """Runs specs; :meth:`stop` (from Ctrl-C) kills every agent still running."""

    def __init__(
        self,
        fixtures_root: Path,
        scratch: Path | None = None,
        keep: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.fixtures_root = fixtures_root
        self.scratch = scratch
        self.keep = keep
        self.env = dict(os.environ if env is None else env)
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill_group(proc)

    def _prepare(self, spec: RunSpec) -> Path:
        prefix = f"skillops-replay-{folder_name(spec.skill)[:24]}-"
        base = tempfile.mkdtemp(prefix=prefix, dir=self.scratch)
        workdir = Path(os.path.realpath(base)) / "work"
        if spec.fixture is not None:
            source = (self.fixtures_root / spec.fixture).resolve()
            shutil.copytree(source, workdir, symlinks=True)
        else:
            workdir.mkdir()
        target = skill_path(spec.agent, workdir, spec.skill)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(spec.skill_text, encoding="utf-8")
        return workdir

    def run(self, spec: RunSpec) -> RunOutcome:
        started = time.time()
        outcome = RunOutcome(
            spec=spec, status="error", argv=[], exit_status=None, wall_ms=0,
            started_at=utc_stamp(started),
        )  # fmt: skip
        if self.stopped.is_set():
            outcome.status, outcome.error = "interrupted", "not started: replay was interrupted"
            return outcome
        try:
            workdir = self._prepare(spec)
        except OSError as exc:
            outcome.error = f"cannot prepare the scratch folder: {exc}"
            return outcome
        outcome.workdir = str(workdir)
        try:
            return self._run_in(spec, workdir, outcome)
        finally:
            if not self.keep:
                shutil.rmtree(workdir.parent, ignore_errors=True)

    def _setup(self, spec: RunSpec, workdir: Path, outcome: RunOutcome) -> bool:
        for command in spec.setup:
            try:
                done = subprocess.run(
                    ["/bin/sh", "-c", command],
                    cwd=workdir,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=spec.timeout,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired:
                outcome.error = f"setup {command!r} timed out after {spec.timeout:g} s"
                return False
            except OSError as exc:
                outcome.error = f"setup {command!r} could not start: {exc}"
                return False
            if done.returncode != 0:
                tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
                outcome.error = f"setup {command!r} exited {done.returncode}: {tail}"
                return False
        return True

    def _run_in(self, spec: RunSpec, workdir: Path, outcome: RunOutcome) -> RunOutcome:
        if not self._setup(spec, workdir, outcome):
            return outcome
        argv = build_argv(spec.template, spec.prompt, workdir)
        outcome.argv = argv
        logs = workdir.parent
        began = time.time()
        try:
            with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
                with self._lock:
                    self._running.add(proc)
                try:
                    if self.stopped.is_set():
                        _kill_group(proc)
                    try:
                        outcome.exit_status = proc.wait(timeout=spec.timeout)
                        outcome.status = "completed" if outcome.exit_status == 0 else "failed"
                    except subprocess.TimeoutExpired:
                        _kill_group(proc)
                        outcome.exit_status = proc.wait()
                        outcome.status = "timeout"
                        outcome.error = f"killed after the {spec.timeout:g} s timeout"
                finally:
                    with self._lock:
                        self._running.discard(proc)
                    _reap_group(proc)
        except OSError as exc:
            outcome.wall_ms = int((time.time() - began) * 1000)
            outcome.error = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
            return outcome
        outcome.wall_ms = int((time.time() - began) * 1000)
        if self.stopped.is_set() and outcome.status != "completed":
            outcome.status, outcome.error = "interrupted", "stopped by Ctrl-C"
        if outcome.status == "failed":
            outcome.error = _tail(logs / "stderr") or f"exited {outcome.exit_status}"
        found = find_transcripts(spec.agent, workdir, began, self.env)
        outcome.transcripts = [str(p) for p in found]
        if outcome.status == "completed" and not found:
            outcome.status = "no-transcript"
            outcome.error = (
                f"the agent exited 0 but no {spec.agent} transcript in its store names"
                f" {workdir} as its cwd"
            )
        return outcome


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the agent's process group, SIGKILL it if it is still there after a grace."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _reap_group(proc: subprocess.Popen[bytes]) -> None:
    """Whatever the agent left running in its group (a server it started) goes with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
