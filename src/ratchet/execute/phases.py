"""Measuring one candidate: its phases, in order, turned into one ``Measurement``.

The run phase is the candidate's own command, in its worktree. The evaluate
phase, when the study has one, is fixed code run afterwards; it is then the
only source of the metric. It is *sealed* (see ``sealed.py``): it runs in a
fresh directory holding the pinned protected files and copies of the run
phase's declared outputs (``[evaluate] inputs``) only, with Python unable to
import or load bytecode from anything the candidate wrote, and (under
``bwrap``) without the candidate's worktree in sight. A declared input that
is missing or not a plain file is a ``crash`` naming it. ``[confirm]`` runs
sealed the same way with its own ``inputs``. Without a ``[run] command`` the
run phase is skipped: the evaluator runs the candidate itself through
``ratchet.evaluation``.

An evaluator that imports ``ratchet.evaluation`` reports its metric on a
pipe only it holds; from then on metric lines on the phase's output do not
count (a candidate called through the harness prints there too). An
evaluate phase that exits with ``REJECT_EXIT`` (3) refused the candidate's
output (for example a model that looks at future tokens): the candidate is
``rejected`` with the evaluation's last line as the reason. Any other
non-zero exit is a ``crash``.

Every phase runs in the study's sandbox (``[run] sandbox``, see
``sandbox.py``); ``[run] hide`` applies to the smoke and run phases only, so
a held-out split stays readable by the fixed evaluation. A phase killed for
breaking a limit is a ``crash`` whose reason names the limit.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..metrics import MetricParser, ParsedOutput, ProgressPoint
from ..observer import Observer
from ..study import Study
from .environment import experiment_env, user_environ
from .resources import Slot
from .runner import RunResult, RunSpec, run_command
from .sandbox import Limits, Sandbox, check_available, for_phase, limit_hint, resolve
from .sealed import Reported, Sealed, SealProblem, read_reports, receive, sealed_dir, sealed_env

__all__ = [
    "REJECT_EXIT",
    "Candidate",
    "Measurement",
    "PhaseOutcome",
    "Executor",
    "last_line",
    "log_share",
    "plain_spec",
    "sample_logs",
]

REJECT_EXIT = 3

Outcome = Literal["ok", "crash", "timeout", "pruned", "interrupted", "rejected"]


@dataclass(frozen=True)
class Candidate:
    """One sample to take: the candidate's commit and experiment, where its files are
    checked out (for this local executor) and where its logs go (``sample_logs``)."""

    study_dir: Path
    log_dir: Path
    seed: int = 0
    commit: str = ""
    exp_id: int = 0

    @property
    def experiment_logs(self) -> Path:
        """The directory of the whole experiment's logs, every sample's (``sample_logs``)."""
        return self.log_dir.parent if self.seed else self.log_dir


def sample_logs(experiment_logs: Path, seed: int) -> Path:
    """Where one sample's logs go: the experiment's log directory for the first sample
    (seed 0), ``seed-N/`` under it for the others, so ``[run] log_cap_mb`` is one
    directory's size."""
    return experiment_logs if seed == 0 else experiment_logs / f"seed-{seed}"


def log_share(cap: int, used: int) -> int:
    """The cap of the next log of an experiment that may write ``cap`` bytes of logs in all
    and has written ``used`` (pure): half of what is left.

    Halving leaves room for every later sample and phase, however many the
    judge takes (their number is not known in advance), so the last sample's
    traceback is still kept; a log over its share keeps its head and tail (runner).
    """
    return max(0, cap - used) // 2


def _bytes_in(directory: Path, but: Path) -> int:
    """The size of the files under ``directory`` other than ``but`` (about to be replaced)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and p != but)


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    result: RunResult
    parsed: ParsedOutput
    reported: Reported | None = None  # what the evaluator reported through the harness


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
    if result.lost:
        return "crash", f"{name} phase: {result.lost}"
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


def _within(study: Study, slot: Slot) -> Study:
    """The study with the slot's memory as its ``[run] max_memory_mb`` when that is lower.

    The limit applies where the sandbox sets limits (levels process and bwrap).
    """
    own = study.run.max_memory_mb
    if slot.memory_mb is None or (own is not None and own <= slot.memory_mb):
        return study
    return study.model_copy(
        update={"run": study.run.model_copy(update={"max_memory_mb": slot.memory_mb})}
    )
def plain_spec(study: Study, pinned: Mapping[str, bytes], budget: float) -> dict[str, Any]:
    """What builds an ``Executor`` elsewhere (a Ray node): plain, picklable data only.

    The study as its validated keys (its directory is the receiver's to set),
    the pinned protected files as bytes, the run phase's budget.
    """
    return {"study": study.model_dump(mode="json"), "pinned": dict(pinned), "budget": budget}


class Executor:
    """Runs a candidate's phases with the study's budgets and the pinned evaluation.

    ``slot``: the worker's share of the machine (``execute.resources``). Every
    phase's process tree is pinned to its CPUs, sees its environment
    (``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``...) at every sandbox level,
    and its ``memory_mb`` caps ``[run] max_memory_mb``. None: the whole machine.
    """

    @classmethod
    def from_plain(
        cls, spec: Mapping[str, Any], *, root: Path, observer: Observer | None = None
    ) -> Executor:
        """The executor ``plain_spec`` describes, for a study whose files are under ``root``.

        ``root`` stands for the user's study directory: under ``bwrap`` it is
        concealed from the candidate, so it must not hold the candidate's checkout.
        """
        study = Study.model_validate({**spec["study"], "root": root})
        return cls(study, pinned=spec["pinned"], observer=observer, budget=spec["budget"])

    def __init__(
        self,
        study: Study,
        *,
        pinned: Mapping[str, bytes],
        observer: Observer | None = None,
        budget: float | None = None,
        environ: Mapping[str, str] | None = None,
        slot: Slot | None = None,
    ) -> None:
        check_available(study.run.sandbox)  # a level this machine lacks fails now, not later
        self.slot = slot or Slot(0)
        study = _within(study, self.slot)
        self.study = study
        self.pinned = dict(pinned)
        self.observer = observer or Observer()
        self.budget = budget or study.run.budget
        self.environ = _with_own_python(dict(user_environ() if environ is None else environ))
        level = resolve(study.run.sandbox)
        self._limits = Limits.from_phase(study.run) if level != "none" else Limits()

    def measure(
        self, candidate: Candidate, watch: Callable[[ProgressPoint], str | None] | None = None
    ) -> Measurement:
        """Run phase, then evaluate phase; ``watch`` may stop the run from progress lines."""
        evaluate = self.study.evaluate
        if self.study.run.command is None:
            assert evaluate is not None, "a study without a run command has [evaluate]"
            return self._fixed("evaluate", evaluate.command, evaluate.inputs or [], candidate)
        run = self._phase("run", self.study.run.command, self.budget, candidate, watch)
        failed = self._failure(run, "run")
        if failed or evaluate is None:
            return failed or self._scored(run, [run])
        return self._fixed("evaluate", evaluate.command, evaluate.inputs or [], candidate, run)

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

        Fixed code like the evaluate phase, so it runs sealed, with its own
        declared ``inputs`` from what the run phase left in the tree.
        """
        spec = self.study.confirm
        assert spec is not None, "the study has no [confirm] section"
        return self._fixed("confirm", spec.command, spec.inputs or [], candidate)

    def _fixed(
        self,
        name: str,
        command: str,
        inputs: list[str],
        candidate: Candidate,
        run: PhaseOutcome | None = None,
    ) -> Measurement:
        """A fixed phase in a sealed directory; ``run`` is the run phase it scores, if any."""
        before = [run] if run is not None else []
        spent = run.result.duration_s if run is not None else 0.0
        progress = run.parsed.progress if run is not None else []
        try:
            with sealed_dir(self.pinned, inputs, candidate.study_dir) as sealed:
                outcome = self._phase(
                    name, command, self._budget_of(name), candidate, sealed=sealed
                )
        except SealProblem as problem:
            return Measurement(
                "crash", reason=f"{name} phase: {problem}", duration_s=spent, phases=before
            )
        refused = self._failure(outcome, name)
        if refused:
            total = spent + refused.duration_s
            return replace(refused, phases=[*before, outcome], progress=progress, duration_s=total)
        return self._scored(outcome, [*before, outcome], progress=progress)

    def _phase(
        self,
        name: str,
        command: str,
        budget: float,
        candidate: Candidate,
        watch: Callable[[ProgressPoint], str | None] | None = None,
        sealed: Sealed | None = None,
    ) -> PhaseOutcome:
        parser = MetricParser(self.study.metric.name)
        observer = self.observer

        def on_line(line: str) -> str | None:
            observer.output_line(candidate.exp_id, line)
            point = parser.feed(line)
            return watch(point) if (point is not None and watch is not None) else None

        observer.phase_started(candidate.exp_id, name, budget)
        log = candidate.log_dir / f"{name}.log"
        cap = int(self.study.run.log_cap_mb * 1_000_000)  # for all of the experiment's logs
        env = experiment_env(
            self.environ,
            allow=self.study.run.env_allow,
            seed=candidate.seed,
            budget=budget,
            deadline=time.time() + budget,
            extra=self.slot.environ(),
        )
        spec = RunSpec(
            command=command,
            cwd=sealed.work if sealed else candidate.study_dir,
            env=sealed_env(env, sealed) if sealed else env,
            budget=budget,
            grace=self._grace(name),
            log_path=log,
            log_cap_bytes=log_share(cap, _bytes_in(candidate.experiment_logs, but=log)),
            sandbox=self._sandbox(name, candidate, sealed),
            pass_fds=(sealed.report_w,) if sealed else (),
            cpus=self.slot.cpus,
        )
        result = run_command(spec, on_line)
        reported = read_reports(receive(sealed.report_r)) if sealed else None
        return PhaseOutcome(name, result, parser.result(), reported)

    def _sandbox(self, name: str, candidate: Candidate, sealed: Sealed | None) -> Sandbox:
        """The phase's isolation: ``[run] hide`` for the candidate's own phases only.

        A sealed phase sees its sealed directory (writable, pinned files and
        ``code/`` read-only) and not the candidate's worktree at all.
        """
        if sealed is None:
            return for_phase(
                self.study.run,
                study_root=self.study.root,
                study_dir=candidate.study_dir,
                protected=self.pinned,
                hide=name in ("run", "smoke"),
                environ=self.environ,
            )
        return for_phase(
            self.study.run,
            study_root=self.study.root,
            study_dir=sealed.work,
            protected=self.pinned,
            hide=False,
            environ=self.environ,
            sealed_from=candidate.study_dir,
            readonly=(sealed.code,),
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
        parsed = _through_channel(source, self.study.metric.name)
        before = phases[0].parsed.extras if phases[0] is not source else {}
        extras = {**before, **parsed.extras}
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
            f"{p.name} log cut to its first and last part ({p.result.log_bytes} bytes produced;"
            f" [run] log_cap_mb = {self.study.run.log_cap_mb:g} for the experiment's logs)"
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


def _through_channel(source: PhaseOutcome, metric: str) -> ParsedOutput:
    """The phase's result: its output lines, or, once the harness said hello, its reports.

    With reports, the phase's printed metric and extras do not count: a
    candidate called through the harness prints on the same output.
    """
    reported = source.reported
    if reported is None:
        return source.parsed
    if reported.problem:
        return ParsedOutput(None, reported.problem, {}, [])
    values = {k: v for k, v in reported.values.items() if k != metric and math.isfinite(v)}
    value = reported.values.get(metric)
    if value is None:
        problem = (
            f"the evaluator used ratchet.evaluation but reported no {metric}"
            f" — call report({metric}=...)"
        )
        return ParsedOutput(None, problem, values, [])
    if not math.isfinite(value):
        return ParsedOutput(None, f"reported {metric} is {value}, not a finite number", values, [])
    return ParsedOutput(value, None, values, [])
