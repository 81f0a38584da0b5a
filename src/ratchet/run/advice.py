"""What to do when the unmodified study fails: the failing phase, its command, the fix.

A failed baseline stops the run before anything can be compared, so its message is the
first thing a new study's author reads. Every phase's reason starts with the phase's name
(``run phase exited with code 1: …``, ``evaluate phase: no line 'mse: VALUE' …``; see
``execute.phases``), which says whose command to fix: the candidate's own (``run``,
``smoke``) or the fixed, sealed evaluation (``evaluate``, ``confirm``).
"""

from __future__ import annotations

import re

from ..study import Study

__all__ = ["baseline_advice", "failing_phase"]

_PHASE = re.compile(r"\b(smoke|run|evaluate|confirm) phase\b")
_MISSING = "no line '"  # metrics.MetricParser: the metric was never printed
_BUDGET_KEY = {
    "run": "[run] budget",
    "smoke": "[run] smoke_budget",
    "evaluate": "[evaluate] budget",
    "confirm": "[confirm] budget",
}


def failing_phase(reason: str) -> str | None:
    """The phase a failure's reason names first, if any."""
    found = _PHASE.search(reason)
    return found.group(1) if found else None


def phase_command(study: Study, phase: str) -> str | None:
    """The command a phase runs, from the study's configuration."""
    commands = {
        "run": study.run.command,
        "smoke": study.run.smoke,
        "evaluate": study.evaluate.command if study.evaluate else None,
        "confirm": study.confirm.command if study.confirm else None,
    }
    return commands.get(phase)


def baseline_advice(study: Study, status: str, reason: str, exp_id: int) -> str:
    """The fix for a failed baseline, naming the phase and its command."""
    see = f"see `ratchet show {exp_id} --log`"
    phase = failing_phase(reason)
    command = phase_command(study, phase) if phase else None
    if phase is None or command is None:
        fallback = study.run.command or (study.evaluate.command if study.evaluate else "")
        return f"fix the study until `{fallback}` works, {see}"
    if status == "timeout":
        return (
            f"the {phase} phase ran out of time: make `{command}` finish within"
            f" {_BUDGET_KEY[phase]}, or raise it, {see}"
        )
    if _MISSING in reason:
        metric = study.metric.name
        return (
            f"the {phase} phase printed no {metric}: make `{command}` print"
            f" `{metric}: VALUE`, {see}"
        )
    sealed = (
        f" (it runs sealed: it sees the protected files and [{phase}] inputs only)"
        if phase in ("evaluate", "confirm")
        else ""
    )
    return f"the {phase} phase failed: fix the study until `{command}` works{sealed}, {see}"
