"""What ``eval replay`` costs around the agent: the same stub-agent runs with and without it.

    python3 bench/replay.py [--cases 8] [--repeat 2]

The agent is tests/stub_agent.py (no model: it loads the project skill and writes a
real-shaped Claude Code transcript). The floor runs it directly, once per case and version,
each in a fresh scratch folder with the SKILL.md in place. ``eval replay`` does the same and
also copies the fixture, finds the transcript in the store, captures and derives it, grades
it and records every event. Prints wall times per run and the ratio replay/floor.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import home_env, program

STUB = Path(__file__).resolve().parent.parent / "tests" / "stub_agent.py"


def skill_md(rule: str) -> str:
    return f"---\nname: triage\ndescription: label an issue\n---\n\n# triage\n\nstub: {rule}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="run cases in the evals.yaml")
    parser.add_argument("--repeat", type=int, default=2, help="replays of each; the best is kept")
    args = parser.parse_args()
    ctl = program("skillopsctl")
    bodies = [skill_md("answer=ready; tools=Read"), skill_md("answer=needs-info; tools=Read,Bash")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        env = home_env(home)
        skill = root / "skills" / "triage"
        skill.mkdir(parents=True)
        (skill / "SKILL.md").write_text(bodies[0])
        cases = "".join(
            f"      - name: c{n}\n        run: {{prompt: 'triage issue {n}'}}\n"
            "        graders: [{type: text, contains: [needs-info]}]\n"
            for n in range(args.cases)
        )
        (skill / "evals.yaml").write_text(f"version: 1\nsuites:\n  - name: s\n    cases:\n{cases}")
        (root / "v2.md").write_text(bodies[1])
        subprocess.run(
            [ctl, "skill", "import", "triage", "--from", str(skill)],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [ctl, "skill", "add-challenger", "triage", str(root / "v2.md")],
            env=env,
            check=True,
            capture_output=True,
        )
        runs = args.cases * 2
        floor = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for n in range(args.cases):
                for body in bodies:
                    work = Path(tempfile.mkdtemp(dir=root)) / "work"
                    target = work / ".claude" / "skills" / "triage" / "SKILL.md"
                    target.parent.mkdir(parents=True)
                    target.write_text(body)
                    subprocess.run(
                        [sys.executable, str(STUB), "-p", f"triage issue {n}"],
                        cwd=work, env=env, check=True, capture_output=True,
                    )  # fmt: skip
                    shutil.rmtree(work.parent)
            floor.append(time.perf_counter() - start)
        replay = []
        command = f"{sys.executable} {STUB} -p {{prompt}}"
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(
                [ctl, "eval", "replay", "triage", "--agent-command", command],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            replay.append(time.perf_counter() - start)
    f, r = min(floor), min(replay)
    print(f"runs: {runs} ({args.cases} cases x 2 versions), --jobs 1")
    print(f"floor (the stub alone):     {f:.2f} s  ({f / runs * 1000:.0f} ms/run)")
    print(f"eval replay (same runs):    {r:.2f} s  ({r / runs * 1000:.0f} ms/run)")
    print(f"ratio replay/floor: {r / f:.2f}")


if __name__ == "__main__":
    main()
