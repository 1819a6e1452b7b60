"""Re-running skill versions on the ``run`` cases of an evals.yaml through the agents' own CLIs.

skillops never calls a model: it copies a case's fixture into a scratch folder, puts one
version's SKILL.md where the agent loads a project skill, runs the agent's headless CLI
there, and captures the transcript the agent wrote like any other (DESIGN.md section 10).
"""

from .agents import AGENTS, AgentSpec, build_argv, skill_path
from .paired import PairedResult, paired, sign_test
from .runner import Runner, RunOutcome, RunSpec

__all__ = [
    "AGENTS",
    "AgentSpec",
    "PairedResult",
    "RunOutcome",
    "RunSpec",
    "Runner",
    "build_argv",
    "paired",
    "sign_test",
    "skill_path",
]
