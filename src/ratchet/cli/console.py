"""The live terminal view of ``ratchet run``, drawn with rich.

One row is printed per finished experiment, in id order: a finished row waits
while an experiment with a smaller id is still in flight (a re-measurement of
the incumbent, taken while a candidate is judged, gets the next id and ends
first; several workers end in any order), and with several workers up to a
second for the id just before it, which another worker may hold without
having said so yet. Below the rows, a live status:

- one worker: the best so far, the counts, the experiment in flight with its
  phase and elapsed/budget, and its last output line. It is redrawn on events
  only (at most 4 times a second), from the loop's own thread: no thread.
- several workers (``workers`` > 1, or as soon as a second worker is
  ``assigned``): the counts and the best, then one line per worker (its
  experiment, description, phase, elapsed/budget; idle when it has none).
  A timer thread redraws it ``refresh_per_second`` times a second, so the
  clocks move even while phases print nothing. Workers run in threads then
  anyway; the timer only draws, never forks, and holds no lock a forked
  shepherd would need.

Hooks may come from several threads at once: each takes the view's lock, and
so does every draw, so the rows and the status never interleave.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..decide.sampling import judged_reference
from ..models import KEPT, ROUTINE, STATUSES, Experiment, incumbent
from ..observer import Observer
from ..safetext import clip, printable
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
_DESCRIPTION = 80  # characters of a description in a row
_WORKER_DESCRIPTION = 40  # ...and in a worker's line
_REDRAW_S = 0.25  # events redraw at most this often (a phase may print thousands of lines)
_GAP_S = 1.0  # how long a row waits for the id before it to be reported (several workers)


def format_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


@dataclass
class _Flight:
    """An experiment in flight: what it is and where it stands."""

    description: str
    phase: str = ""
    since: float = 0.0  # when its current phase started (monotonic)
    budget: float = 0.0
    last_line: str = ""


class ConsoleObserver(Observer):
    """Rows in id order, and a live status of what runs now (see the module's notes)."""

    def __init__(
        self,
        console: Console,
        study: Study,
        history: list[Experiment],
        *,
        workers: int = 1,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.study = study
        self.counts = Counter(e.status for e in history)
        self.history = list(history)
        self.best = _judged_best(self.history)
        self.baseline = next((e.metric for e in history if e.status == "baseline"), None)
        self.flights: dict[int, _Flight] = {}
        # Each worker's experiments, innermost last: a re-measurement a candidate's trial takes
        # is assigned on top of it, and the candidate is shown again once that finished.
        self.workers: dict[str, list[int]] = {}
        self.multi = workers > 1
        self.refresh_s = 1.0 / refresh_per_second
        self.clock = clock
        self._held: list[tuple[int, int, float, Experiment]] = []  # rows waiting (a heap)
        self._printed: int | None = max((e.id for e in history), default=None)
        self._order = 0
        self._drawn = -math.inf
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._open = False
        self.live = Live(console=console, auto_refresh=False, transient=True)

    def __enter__(self) -> ConsoleObserver:
        with self._lock:
            self.live.__enter__()
            self._open = True
            if self.multi:
                self._start_timer()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        with self._lock:
            self._open = False
            self._flush(everything=True)
            self.live.__exit__(None, None, None)

    # --- hooks (any thread) -------------------------------------------------------------

    def assigned(self, worker: str, exp_id: int | None) -> None:
        with self._lock:
            held = self.workers.setdefault(worker, [])
            if exp_id is None:
                held.clear()
            elif exp_id not in held:
                held.append(exp_id)
            if len(self.workers) > 1 and not self.multi:
                self.multi = True
                if self._open:
                    self._start_timer()
            self._draw(force=True)

    def experiment_started(self, exp_id: int, description: str) -> None:
        with self._lock:
            self.flights[exp_id] = _Flight(printable(description), since=self.clock())
            self._draw(force=True)

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        with self._lock:
            flight = self.flights.setdefault(exp_id, _Flight(""))
            flight.phase, flight.budget, flight.since = phase, budget, self.clock()
            self._draw(force=True)

    def output_line(self, exp_id: int, line: str) -> None:
        with self._lock:
            flight = self.flights.get(exp_id)
            if flight is not None:
                flight.last_line = clip(line, 100)  # the candidate's own output
            self._draw()

    def experiment_finished(self, experiment: Experiment) -> None:
        with self._lock:
            self.counts[experiment.status] += 1
            self.history.append(experiment)
            if experiment.status in KEPT or experiment.status == "remeasure":
                self.best = _judged_best(self.history)
                self.baseline = self.baseline if self.baseline is not None else experiment.metric
            self.flights.pop(experiment.id, None)
            for held in self.workers.values():
                if experiment.id in held:
                    held.remove(experiment.id)
            entry = (experiment.id, self._order, self.clock(), experiment)
            heapq.heappush(self._held, entry)
            self._order += 1
            self._flush()
            self._draw(force=True)

    def message(self, text: str) -> None:
        with self._lock:
            line = Text(printable(text, keep_lines=True), style="yellow")
            self.console.print(line, highlight=False)

    # --- rows ---------------------------------------------------------------------------

    def _flush(self, everything: bool = False) -> None:
        """Print the finished rows that no smaller id can still come before, in id order.

        A row waits while a smaller id is in flight. With several workers it
        also waits, for at most ``_GAP_S``, for the id just before it: another
        worker may have been given that id and not said so yet.
        """
        waiting = set(self.flights).union(*self.workers.values())
        first = math.inf if everything or not waiting else min(waiting)
        now = self.clock()
        while self._held and self._held[0][0] < first:
            exp_id, _, held_at, experiment = self._held[0]
            gap = self._printed is not None and exp_id > self._printed + 1
            if gap and self.multi and not everything and now - held_at < _GAP_S:
                break
            heapq.heappop(self._held)
            self._printed = exp_id
            self.console.print(self._row(experiment), highlight=False)

    def _row(self, exp: Experiment) -> Text:
        row = Text(f"#{exp.id:<4} ")
        row.append(f"{exp.status:<11}", style=_STYLE.get(exp.status, ""))
        row.append(f"{self.study.metric.name}={format_metric(exp.metric):<12} ")
        row.append(f"{exp.duration_s:6.1f}s  ")
        row.append(clip(exp.description, _DESCRIPTION))
        if exp.reason and exp.status not in ROUTINE:
            row.append(f"  ({clip(exp.reason.splitlines()[0], 100)})", style="dim")
        return row

    # --- the live status ----------------------------------------------------------------

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._tick, name="ratchet-view", daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        """Redraw on a timer until the view closes, so elapsed times move without events."""
        while not self._stop.wait(self.refresh_s):
            with self._lock:
                self._flush()
                self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not self._open or (not force and now - self._drawn < _REDRAW_S):
            return
        self._drawn = now
        status = self._workers_status(now) if self.multi else self._status(now)
        self.live.update(status, refresh=True)

    def _best_line(self) -> Text:
        text = Text(f"best {self.study.metric.name} {format_metric(self.best)}", style="bold")
        text.append(f"  (baseline {format_metric(self.baseline)})")
        return text

    def _status(self, now: float) -> Text:
        """One worker: best, counts, and the latest experiment in flight."""
        text = self._best_line()
        text.append(f"  {' '.join(f'{k} {v}' for k, v in sorted(self.counts.items()))}\n")
        if self.flights:
            exp_id = max(self.flights)
            flight = self.flights[exp_id]
            what = f"#{exp_id} {clip(flight.description, 60)}"
            text.append(f"{what}  {flight.phase} {self._clock(flight, now)}", style="cyan")
            if flight.last_line:
                text.append(f"\n  {flight.last_line}", style="dim")
        return text

    def _workers_status(self, now: float) -> Text:
        """Several workers: counts and best, then one line per worker."""
        running = len(self.flights)
        counts = [f"running {running}"] + [
            f"{status} {self.counts[status]}" for status in STATUSES if self.counts.get(status)
        ]
        text = self._best_line()
        text.append(f"  {' · '.join(counts)}")
        shown: set[int] = set()
        for worker in sorted(self.workers, key=lambda w: (len(w), w)):
            held = self.workers[worker]
            exp_id = held[-1] if held else None
            text.append("\n")
            if exp_id is None:
                text.append(f"{worker:<4} idle", style="dim")
                continue
            shown.update(held)
            text.append_text(self._flight_line(worker, exp_id, now))
        for exp_id in sorted(set(self.flights) - shown):  # e.g. a re-measurement
            text.append("\n")
            text.append_text(self._flight_line("", exp_id, now))
        return text

    def _flight_line(self, worker: str, exp_id: int, now: float) -> Text:
        flight = self.flights.get(exp_id)
        if flight is None:  # assigned, not started yet: being proposed or verified
            return Text(f"{worker:<4} #{exp_id:<4} preparing", style="dim")
        what = clip(flight.description, _WORKER_DESCRIPTION)
        line = Text(f"{worker:<4} #{exp_id:<4} {what:<{_WORKER_DESCRIPTION}} ")
        line.append(f"{flight.phase or 'starting':<8} {self._clock(flight, now)}", style="cyan")
        return line

    @staticmethod
    def _clock(flight: _Flight, now: float) -> str:
        """Elapsed against the phase's budget: ``12.3/60 s``."""
        return f"{max(0.0, now - flight.since):5.1f}/{flight.budget:g} s"


def _judged_best(history: list[Experiment]) -> float | None:
    """The best as the judge sees it: the mean of all the incumbent's samples."""
    best = incumbent(history)
    return judged_reference(history, best) if best else None
