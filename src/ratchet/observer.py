"""What the loop tells the outside world as it works.

The loop calls these hooks; the command line renders them live with rich,
tests record them. The base class ignores everything, so an observer only
overrides what it shows. Every event about an experiment carries its id, so
a view can follow several experiments in flight. Hooks must return quickly: they
sit on the hot path of every experiment.

Threads: with one worker every hook is called on the loop's own thread. With
N workers (``ratchet run --workers N``) the loop serializes the hooks it calls
itself (``assigned``, ``experiment_started``, ``experiment_finished``,
``message``: all under the loop's lock), but ``phase_started`` and
``output_line`` come from the worker threads while their phases run, so an
observer that keeps state across experiments must be thread-safe.
"""

from __future__ import annotations

from .models import Experiment

__all__ = ["Observer"]


class Observer:
    """No-op hooks; subclass and override what you want to see."""

    def assigned(self, worker: str, exp_id: int | None) -> None:
        """Worker ``worker`` ("w0", "w1", ...) now works on ``exp_id``; None: it is idle."""

    def experiment_started(self, exp_id: int, description: str) -> None:
        """A candidate passed verification and is about to run."""

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        """A phase (smoke, run, evaluate, confirm) of experiment ``exp_id`` started."""

    def output_line(self, exp_id: int, line: str) -> None:
        """One line a phase of experiment ``exp_id`` printed, as it arrives."""

    def experiment_finished(self, experiment: Experiment) -> None:
        """An experiment got its final status."""

    def message(self, text: str) -> None:
        """A one-line note for the user (resume, warnings, why the run stopped)."""
