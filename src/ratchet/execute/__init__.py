"""Running commands: the process tree, its budget, output capture, the environment."""

from __future__ import annotations

from .environment import SECRET_PATTERNS, experiment_env, scrub
from .runner import RunResult, RunSpec, run_command

__all__ = ["RunSpec", "RunResult", "run_command", "SECRET_PATTERNS", "scrub", "experiment_env"]
