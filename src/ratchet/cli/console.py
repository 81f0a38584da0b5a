"""The live terminal view of ``ratchet run``, drawn with rich.

It stays off the hot path: the status line is redrawn at most a few times a
second, from the loop's own thread (no refresh thread, so the runner's fork
stays safe), and one line is printed per finished experiment.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..models import KEPT, ROUTINE, Experiment, incumbent
from ..observer import Observer
from ..safetext import printable
from ..study import Study

__all__ = ["ConsoleObserver", "format_metric"]

_STYLE = {
    "baseline": "bold cyan",
    "keep": "bold green",
    "discard": "dim",
    "crash": "red",
    "timeout": "red",
    "pruned": "yellow",
    "rejected": "magenta",
    "interrupted": "yellow",
    "remeasure": "cyan",
    "unconfirmed": "yellow",
}


def format_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


class ConsoleObserver(Observer):
    """Shows the current experiment, phase, elapsed/budget, best so far and counts."""

    def __init__(self, console: Console, study: Study, history: list[Experiment]) -> None:
        self.console = console
        self.study = study
        self.counts = Counter(e.status for e in history)
        best = incumbent(history)
        self.best = best.metric if best else None
        self.baseline = next((e.metric for e in history if e.status == "baseline"), None)
        self.exp = ""
        self.phase = ""
        self.phase_t0 = 0.0
        self.budget = 0.0
        self.last_line = ""
        self._drawn = 0.0
        self.live = Live(console=console, auto_refresh=False, transient=True)

    def __enter__(self) -> ConsoleObserver:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def experiment_started(self, exp_id: int, description: str) -> None:
        self.exp = f"#{exp_id} {printable(description)[:60]}"
        self._draw(force=True)

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.phase, self.budget, self.phase_t0 = phase, budget, time.monotonic()
        self._draw(force=True)

    def output_line(self, exp_id: int, line: str) -> None:
        self.last_line = printable(line)[:100]  # the candidate's own output
        self._draw()

    def experiment_finished(self, experiment: Experiment) -> None:
        self.counts[experiment.status] += 1
        if experiment.status in KEPT:
            self.best = experiment.metric
            self.baseline = self.baseline if self.baseline is not None else experiment.metric
        self.console.print(self._row(experiment), highlight=False)
        self.exp, self.phase = "", ""
        self._draw(force=True)

    def message(self, text: str) -> None:
        self.console.print(Text(printable(text, keep_lines=True), style="yellow"), highlight=False)

    def _row(self, exp: Experiment) -> Text:
        row = Text(f"#{exp.id:<4} ")
        row.append(f"{exp.status:<11}", style=_STYLE.get(exp.status, ""))
        row.append(f"{self.study.metric.name}={format_metric(exp.metric):<12} ")
        row.append(f"{exp.duration_s:6.1f}s  ")
        row.append(printable(exp.description)[:80])
        if exp.reason and exp.status not in ROUTINE:
            row.append(f"  ({printable(exp.reason.splitlines()[0])[:100]})", style="dim")
        return row

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.25:
            return
        self._drawn = now
        self.live.update(self._status(now), refresh=True)

    def _status(self, now: float) -> Text:
        counts = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        text = Text(f"best {self.study.metric.name} {format_metric(self.best)}", style="bold")
        text.append(f"  (baseline {format_metric(self.baseline)})  {counts}\n")
        if self.exp:
            elapsed = now - self.phase_t0
            text.append(f"{self.exp}  {self.phase} {elapsed:5.1f}/{self.budget:g} s", style="cyan")
            if self.last_line:
                text.append(f"\n  {self.last_line}", style="dim")
        return text
