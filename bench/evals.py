"""``eval run`` and ``skill show`` over the real corpus, beside the floor of reading the same
sessions, in one run.

    python3 bench/evals.py [--repeat 3]

After ``skillopsd --once`` on the corpus, the skill loaded by the most sessions is graded by
a suite using every grader type (no ``match``, so every session is graded). The floor is
``skillopsctl sessions --skill S --json`` (interpreter start, catch-up check and reading the
same sessions). Prints wall times, sessions graded and the ratio eval/floor (target <= 3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program

SUITE = """\
version: 1
suites:
  - name: everything
    cases:
      - name: every-grader
        graders:
          - {type: outcome, expect: success}
          - {type: text, contains: ["a"], reject: ["zzzz-never"]}
          - {type: tool_sequence, sequence: [read, edit]}
          - {type: tool_constraint, expectTools: [shell], rejectTools: [web], maxTools: 100000}
          - {type: skill_invocation, expectSkills: [SKILL]}
          - {type: behavior, maxTools: 100000, maxTurns: 100000}
          - {type: human_label, expect: good}
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed: {done.stderr}")
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    ctl = program("skillopsctl")
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        env = home_env(home)
        subprocess.run([program("skillopsd"), "--once"], env=env, check=True, capture_output=True)
        skills = json.loads(subprocess.check_output([ctl, "skills", "--json"], env=env))
        skill = max(skills, key=lambda s: (s["sessions"], s["skill"]))["skill"]
        skill_dir = Path(tmp) / "skill"
        skill_dir.mkdir()
        (skill_dir / "evals.yaml").write_text(SUITE.replace("SKILL", skill))
        evals, shows, floors = [], [], []
        graded = 0
        for _ in range(args.repeat):
            t, out = timed(
                [ctl, "eval", "run", skill, "--skill-dir", str(skill_dir), "--json"], env
            )
            evals.append(t)
            graded = sum(len(v["sessions"]) for v in json.loads(out)["versions"])
            shows.append(timed([ctl, "skill", "show", skill, "--json"], env)[0])
            floors.append(timed([ctl, "sessions", "--skill", skill, "--json"], env)[0])
        best_eval, best_show, best_floor = min(evals), min(shows), min(floors)
        print(f"skill {skill}: {graded} sessions graded by 7 graders")
        print(f"eval run:   {best_eval:.3f} s")
        print(f"skill show: {best_show:.3f} s")
        print(f"floor (sessions --skill --json): {best_floor:.3f} s")
        print(f"ratio eval/floor: {best_eval / best_floor:.2f} (target <= 3)")
        print(f"ratio show/floor: {best_show / best_floor:.2f}")


if __name__ == "__main__":
    main()
