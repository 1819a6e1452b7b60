"""A HOME for the dashboard's browser tests: the real corpus, plus a skill with two versions,
labels, eval runs and an A/B test, captured by the real daemon; and the real
``skillopsctl serve`` on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._daemon import daemon_env
from ._shared import require_shared, skip_or_fail
from ._skill_sessions import T0, claude_session, skill_dir
from .conftest import SHARED, console_script

CORPUS = SHARED / "corpus" / "real-home.tar.gz"
CHROMIUM = Path(os.environ.get("SKILLOPS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVALS = """\
version: 1
suites:
  - name: triage-correctness
    cases:
      - name: asks-for-info
        match: {prompt: "triage"}
        graders:
          - type: text
            on: final_message
            contains: ["needs-info"]
      - name: finishes
        graders:
          - type: outcome
            expect: success
"""


def artifacts_dir(name: str = "dashboard") -> Path:
    """Where screenshots go: ``$SKILLOPS_ARTIFACTS`` (CI keeps it), else test-artifacts/."""
    base = os.environ.get("SKILLOPS_ARTIFACTS")
    root = Path(base) if base else Path(__file__).resolve().parent.parent / "test-artifacts"
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def launch_chromium(playwright: Any) -> Any:
    """The system Chromium (Debian's package), never a downloaded browser."""
    if not CHROMIUM.exists():
        skip_or_fail(f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class DashboardHome:
    """A temporary HOME with captured sessions and the CLI to query it."""

    def __init__(self, root: Path) -> None:
        require_shared()
        self.home = root / "home"
        self.home.mkdir()
        with tarfile.open(CORPUS) as tar:
            tar.extractall(self.home, filter="data")
        self.skills = root / "skills"
        self.env = {**daemon_env(self.home), "TZ": "UTC"}
        self.natives: list[str] = []

    def build(self) -> None:
        directory = skill_dir(self.skills, "triage", "Label issues. v2", EVALS)
        bodies = ["Label issues. v1"] * 2 + ["Label issues. v2"] * 3
        finals = ["ready-to-implement", "Label: needs-info"] + ["Label: needs-info"] * 3
        for n, (body, final) in enumerate(zip(bodies, finals, strict=True), 1):
            native = f"{n:08d}-0000-4000-8000-00000000d0a5"
            claude_session(
                self.home,
                session=native,
                skill="triage",
                skill_dir=directory,
                body=body,
                prompt=f"Please triage issue {40 + n}",
                tools=["Read", "Bash"] if n % 2 else ["Read"],
                final=final,
                start=T0 + timedelta(days=n),
            )
            self.natives.append(native)
        subprocess.run(
            [console_script("skillopsd"), "--once"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        first = self.session_id(self.natives[0])
        self.ctl("annotate", first, "--label", "bad", "--skill", "triage", "--note", "no info")
        self.ctl("eval", "run", "triage", "--skill-dir", str(directory), code=1)
        self.ctl("skill", "import", "triage", "--from", str(directory))
        challenger = self.skills / "challenger.md"
        challenger.write_text("---\nname: triage\ndescription: test\n---\n\nLabel issues. v3\n")
        self.ctl("skill", "add-challenger", "triage", str(challenger))
        for i in range(6):
            self.ctl("skill", "record", "triage", "--version", "v2", "--success")
            outcome = "--success" if i % 3 else "--failure"
            self.ctl("skill", "record", "triage", "--version", "v3", outcome)

    def ctl(self, *args: str, code: int = 0) -> str:
        result = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self.ctl(*args, "--json", code=code))

    def session_id(self, native: str) -> str:
        rows = self.json("sessions")
        return str(next(s["session_id"] for s in rows if s["native_session_id"] == native))


class Served:
    """``skillopsctl serve --port 0`` on a HOME, and the URL it printed."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [console_script("skillopsctl"), "serve", "--port", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "http://" in line or not line:
                break
        match = re.search(r"(http://\S+)", line)
        if match is None:
            self.stop()
            raise AssertionError(f"serve printed no URL: {line!r} {self.proc.stderr.read()!r}")
        self.url = match.group(1)
        self.base, _, query = self.url.partition("/?")
        self.token = query.removeprefix("token=")
        self.port = int(self.base.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
