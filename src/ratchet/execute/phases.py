"""Measuring one candidate: its phases, in order, turned into one ``Measurement``.

The run phase is the candidate's own command. The evaluate phase, when the
study has one, is fixed code run afterwards on what the run phase left behind;
it is then the only source of the metric, and the protected files are
restored from their pinned contents just before it, so a candidate that
rewrote them at run time changes nothing. An evaluate phase that exits with
``REJECT_EXIT`` (3) refused the candidate's output (for example a model that
looks at future tokens): the candidate is ``rejected`` with the evaluation's
last line as the reason. Any other non-zero exit is a ``crash``.

Every phase runs in the study's sandbox (``[run] sandbox``, see
``sandbox.py``); ``[run] hide`` applies to the smoke and run phases only, so
a held-out split stays readable by the fixed evaluation. A phase killed for
breaking a limit is a ``crash`` whose reason names the limit.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..metrics import MetricParser, ParsedOutput, ProgressPoint
from ..observer import Observer
from ..study import Study
from .environment import experiment_env
from .runner import RunResult, RunSpec, run_command
from .sandbox import Limits, Sandbox, check_available, for_phase, limit_hint

__all__ = ["REJECT_EXIT", "Candidate", "Measurement", "PhaseOutcome", "Executor", "last_line"]

REJECT_EXIT = 3

Outcome = Literal["ok", "crash", "timeout", "pruned", "interrupted", "rejected"]


@dataclass(frozen=True)
class Candidate:
    """One sample to take: the candidate's commit and experiment, where its files are
    checked out (for this local executor) and where its logs go."""

    study_dir: Path
    log_dir: Path
    seed: int = 0
    commit: str = ""
    exp_id: int = 0


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    result: RunResult
    parsed: ParsedOutput


@dataclass(frozen=True)
class Measurement:
    """One sample of a candidate: the metric, or the status and reason it has none."""

    status: Outcome
    metric: float | None = None
    extras: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    tail: str = ""
    duration_s: float = 0.0
    progress: list[ProgressPoint] = field(default_factory=list)
    phases: list[PhaseOutcome] = field(default_factory=list)


def _verdict(
    result: RunResult, name: str, budget: float, limits: Limits | None = None
) -> tuple[Outcome | None, str]:
    if result.stop_reason == "interrupted":
        return "interrupted", f"stopped by Ctrl-C during {name}"
    if result.violation:
        return "crash", (
            f"{name} phase {result.violation} ([run] max_processes) and was killed — a fork bomb?"
        )
    if result.stop_reason:
        return "pruned", result.stop_reason
    if result.timed_out:
        return "timeout", f"{name} phase ran past its {budget:g} s budget and was killed"
    code = result.returncode
    if code == 0:
        return None, ""
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"code {code}"
    status: Outcome = "rejected" if name == "evaluate" and code == REJECT_EXIT else "crash"
    hint = limit_hint(limits, code, result.tail) if limits is not None else ""
    return status, f"{name} phase exited with {how}: {last_line(result.tail)}" + (
        f" ({hint})" if hint else ""
    )


def _with_own_python(environ: dict[str, str]) -> dict[str, str]:
    """``python`` in a study's commands is the interpreter Ratchet runs in (its venv)."""
    own = str(Path(sys.executable).parent)
    environ["PATH"] = os.pathsep.join([own, environ.get("PATH", "")]).rstrip(os.pathsep)
    return environ


def last_line(text: str) -> str:
    """The last non-empty line of some output, for one-line reasons."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""


class Executor:
    """Runs a candidate's phases with the study's budgets and the pinned evaluation."""

    def __init__(
        self,
        study: Study,
        *,
        pinned: Mapping[str, bytes],
        observer: Observer | None = None,
        budget: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        check_available(study.run.sandbox)  # a level this machine lacks fails now, not later
        self.study = study
        self.pinned = dict(pinned)
        self.observer = observer or Observer()
        self.budget = budget or study.run.budget
        self.environ = _with_own_python(dict(os.environ if environ is None else environ))
        self._limits = Limits.from_phase(study.run) if study.run.sandbox != "none" else Limits()

    def measure(
        self, candidate: Candidate, watch: Callable[[ProgressPoint], str | None] | None = None
    ) -> Measurement:
        """Run phase, then evaluate phase; ``watch`` may stop the run from progress lines."""
        run = self._phase("run", self.study.run.command, self.budget, candidate, watch)
        failed = self._failure(run, "run")
        if failed or self.study.evaluate is None:
            return failed or self._scored(run, [run])
        self._restore_pins(candidate.study_dir)
        evaluate = self._phase(
            "evaluate", self.study.evaluate.command, self.study.evaluate.budget, candidate
        )
        refused = self._failure(evaluate, "evaluate")
        if refused:
            spent = run.result.duration_s + refused.duration_s
            return replace(
                refused, phases=[run, evaluate], progress=run.parsed.progress, duration_s=spent
            )
        return self._scored(evaluate, [run, evaluate], progress=run.parsed.progress)

    def smoke(self, candidate: Candidate) -> Measurement | None:
        """The study's cheap pre-check, if it has one; a failure is a crash."""
        if not self.study.run.smoke:
            return None
        budget = self._budget_of("smoke")
        outcome = self._phase("smoke", self.study.run.smoke, budget, candidate)
        failed = self._failure(outcome, "smoke")
        return failed or Measurement("ok", duration_s=outcome.result.duration_s)

    def confirm(self, candidate: Candidate) -> Measurement:
        """The study's ``[confirm]`` command on a measured candidate: its metric, or why not.

        Fixed code like the evaluate phase, so the pinned files are restored first;
        whatever the run phase left in the tree is still there for it to check.
        """
        spec = self.study.confirm
        assert spec is not None, "the study has no [confirm] section"
        self._restore_pins(candidate.study_dir)
        outcome = self._phase("confirm", spec.command, spec.budget, candidate)
        return self._failure(outcome, "confirm") or self._scored(outcome, [outcome])

    def _phase(
        self,
        name: str,
        command: str,
        budget: float,
        candidate: Candidate,
        watch: Callable[[ProgressPoint], str | None] | None = None,
    ) -> PhaseOutcome:
        parser = MetricParser(self.study.metric.name)
        observer = self.observer

        def on_line(line: str) -> str | None:
            observer.output_line(candidate.exp_id, line)
            point = parser.feed(line)
            return watch(point) if (point is not None and watch is not None) else None

        observer.phase_started(candidate.exp_id, name, budget)
        spec = RunSpec(
            command=command,
            cwd=candidate.study_dir,
            env=experiment_env(
                self.environ,
                allow=self.study.run.env_allow,
                seed=candidate.seed,
                budget=budget,
                deadline=time.time() + budget,
            ),
            budget=budget,
            grace=self._grace(name),
            log_path=candidate.log_dir / f"{name}.log",
            log_cap_bytes=int(self.study.run.log_cap_mb * 1_000_000),
            sandbox=self._sandbox(name, candidate),
        )
        return PhaseOutcome(name, run_command(spec, on_line), parser.result())

    def _sandbox(self, name: str, candidate: Candidate) -> Sandbox:
        """The phase's isolation: ``[run] hide`` for the candidate's own phases only."""
        return for_phase(
            self.study.run,
            study_root=self.study.root,
            study_dir=candidate.study_dir,
            protected=self.pinned,
            hide=name in ("run", "smoke"),
            environ=self.environ,
        )

    def _grace(self, name: str) -> float:
        """Each fixed phase has its own grace; smoke and run share the candidate's."""
        if name == "evaluate" and self.study.evaluate:
            return self.study.evaluate.grace
        if name == "confirm" and self.study.confirm:
            return self.study.confirm.grace
        return self.study.run.grace

    def _failure(self, phase: PhaseOutcome, name: str) -> Measurement | None:
        """The status and reason when a phase did not finish cleanly, else None."""
        result = phase.result
        status, reason = _verdict(result, name, self._budget_of(name), self._limits)
        if status is None:
            return None
        return Measurement(
            status, reason=reason, tail=result.tail[-2000:], duration_s=result.duration_s
        )

    def _budget_of(self, name: str) -> float:
        if name == "evaluate" and self.study.evaluate:
            return self.study.evaluate.budget
        if name == "confirm" and self.study.confirm:
            return self.study.confirm.budget
        if name == "smoke":
            return self.study.run.smoke_budget or max(1.0, 0.1 * self.budget)
        return self.budget

    def _scored(
        self,
        source: PhaseOutcome,
        phases: list[PhaseOutcome],
        progress: list[ProgressPoint] | None = None,
    ) -> Measurement:
        parsed = source.parsed
        extras = {**phases[0].parsed.extras, **parsed.extras}
        extras.pop(self.study.metric.name, None)
        duration = sum(p.result.duration_s for p in phases)
        if parsed.metric is None:
            where = f"{source.name} phase"
            reason = f"{where}: {parsed.problem}"
            return Measurement(
                "crash",
                reason=reason,
                tail=source.result.tail[-2000:],
                duration_s=duration,
                extras=extras,
                phases=phases,
            )
        capped = [
            f"{p.name} log capped at {self.study.run.log_cap_mb:g} MB"
            f" ({p.result.log_bytes} bytes produced)"
            for p in phases
            if p.result.truncated
        ]
        return Measurement(
            "ok",
            reason="; ".join(capped),
            metric=parsed.metric,
            extras=extras,
            duration_s=duration,
            progress=progress if progress is not None else parsed.progress,
            phases=phases,
        )

    def _restore_pins(self, study_dir: Path) -> None:
        for rel, content in self.pinned.items():
            target = study_dir / rel
            if target.is_symlink():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            elif target.is_file() and target.read_bytes() == content:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
