"""The metric protocol: reading one number (and some extras) out of a command's output.

What a study's commands print (see DESIGN.md, "Metric protocol"):

- the final metric, as a whole line ``NAME: VALUE`` (``val_bpb: 0.9979``),
  ``METRIC:NAME=VALUE``, or a JSON object line with a numeric ``NAME`` key.
  The last such line wins, so a run that prints a finite value and then
  ``nan`` has no usable metric: the last word is the run's final state.
- extras: other whole lines ``key: number`` (``training_seconds: 300.1``),
  ``METRIC:key=number`` lines, and the other numeric keys of the JSON line that
  carries the metric. Last wins; non-finite extras are dropped. Log lines such
  as ``step 5 (loss: 2.3)`` are not extras: only a whole line whose key is a
  simple identifier counts.
- progress: JSON object lines with a numeric ``"progress"`` key. Such a line
  is *only* a progress point, never the final metric, even when it also holds
  ``NAME``: progress lines report intermediate values (a validation loss at
  40 % of the budget) that must not be mistaken for the result. Progress
  values keep ``nan``: a diverging run is exactly what a pruner wants to see.

The metric's name is matched exactly (case-sensitive); the ``METRIC:`` tag and
the ``nan``/``inf`` spellings in any case. Numbers are written with ASCII digits
only, in summary lines and JSON lines alike (``json`` already refuses others):
a line with other digits is an ordinary log line.

Anything else, malformed JSON included, is an ordinary log line. The parser
never raises on a line. Text after the last carriage return of a line is what
a terminal would show, so a metric printed after a ``\\r`` progress bar on the
same line is still found.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ProgressPoint", "ParsedOutput", "MetricParser", "parse_output"]

# ASCII digits only: Python's ``\d`` and ``float()`` also take Arabic-Indic or full-width
# digits, so ``mse: ١٢`` would read as 12.0 — a line no person would take for a score.
_NUMBER = r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:nan|inf(?:inity)?))"
_KEY = r"[A-Za-z_][A-Za-z0-9_.\-/]*"
_SUMMARY = re.compile(rf"\s*({_KEY})\s*:\s*({_NUMBER})\s*")
_TAGGED = re.compile(rf"\s*(?i:METRIC):\s*({_KEY})\s*=\s*({_NUMBER})\s*")
_MAX_LINE = 100_000  # longer lines are data dumps, not summary lines


@dataclass(frozen=True)
class ProgressPoint:
    """One progress line: how far into the budget, and what the run reported there."""

    progress: float  # fraction 0..1 of the budget
    values: dict[str, float]  # the other numeric keys of the JSON progress line


@dataclass(frozen=True)
class ParsedOutput:
    """Everything the protocol found in one command's output."""

    metric: float | None  # the last matching value; None when absent or non-finite
    problem: str | None  # one sentence saying why metric is None
    extras: dict[str, float]  # other summary numbers, last wins
    progress: list[ProgressPoint]


def _number(value: object) -> float | None:
    """A JSON value as a float, if it is a number (booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf if value > 0 else -math.inf


def _json_object(text: str) -> dict | None:
    """The line as a JSON object, or None (malformed JSON is an ordinary line)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


class MetricParser:
    """Reads output one line at a time, as it streams, and keeps what the protocol needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        escaped = re.escape(name)
        self._named = re.compile(rf"\s*{escaped}\s*:\s*({_NUMBER})\s*")
        self._named_tag = re.compile(rf"\s*(?i:METRIC):\s*{escaped}\s*=\s*({_NUMBER})\s*")
        self._metric: float | None = None
        self._seen = False
        self._in_progress = False
        self._extras: dict[str, float] = {}
        self._progress: list[ProgressPoint] = []

    def feed(self, line: str) -> ProgressPoint | None:
        """Take one line; return the progress point when it is a progress line."""
        text = line.rstrip("\r\n").rsplit("\r", 1)[-1].strip()
        if not text or len(text) > _MAX_LINE:
            return None
        if text.startswith("{") and text.endswith("}"):
            data = _json_object(text)
            return None if data is None else self._feed_object(data)
        self._feed_summary(text)
        return None

    def _feed_summary(self, text: str) -> None:
        """``NAME: VALUE`` / ``METRIC:NAME=VALUE`` for the metric, else ``key: number`` extras."""
        named = self._named.fullmatch(text) or self._named_tag.fullmatch(text)
        if named:
            self._metric = float(named.group(1))
            self._seen = True
            return
        other = _SUMMARY.fullmatch(text) or _TAGGED.fullmatch(text)
        if other:
            self._extra(other.group(1), float(other.group(2)))

    def _feed_object(self, data: dict) -> ProgressPoint | None:
        """A JSON line: a progress point, the metric with its extras, or nothing of ours."""
        if "progress" in data:
            return self._progress_point(data)
        value = _number(data.get(self.name))
        if value is None:
            return None
        self._metric = value
        self._seen = True
        for key, other in data.items():
            number = _number(other)
            if number is not None and key != self.name:
                self._extra(key, number)
        return None

    def _progress_point(self, data: dict) -> ProgressPoint | None:
        progress = _number(data["progress"])
        if self.name in data:
            self._in_progress = True
        if progress is None or not math.isfinite(progress):
            return None
        values = {k: v for k, v in ((k, _number(x)) for k, x in data.items()) if v is not None}
        values.pop("progress", None)
        point = ProgressPoint(progress=progress, values=values)
        self._progress.append(point)
        return point

    def _extra(self, key: str, value: float) -> None:
        if key != self.name and math.isfinite(value):
            self._extras[key] = value

    def result(self) -> ParsedOutput:
        """The metric (or why there is none), extras and progress seen so far."""
        metric = self._metric
        problem = None
        if not self._seen:
            problem = self._missing()
        elif metric is None or not math.isfinite(metric):
            problem = f"metric {self.name} is {metric}, not a finite number"
            metric = None
        return ParsedOutput(metric, problem, dict(self._extras), list(self._progress))

    def _missing(self) -> str:
        name = self.name
        problem = (
            f"no line '{name}: VALUE' (or METRIC:{name}=VALUE, or a JSON line with "
            f'"{name}") in the output'
        )
        if self._in_progress:
            problem += f' (JSON lines with "progress" are progress points; print {name} on its own)'
        near = near_name(name, self._extras)
        if near is not None:
            problem += (
                f"; it printed {near} — if that is the metric, set [metric] name = \"{near}\""
                f" in ratchet.toml, or print {name}"
            )
        return problem


def near_name(name: str, printed: Iterable[str]) -> str | None:
    """The printed name closest to the metric's (``runtime_ms`` for ``runtime``, ``MSE`` for
    ``mse``), if one is close enough to be a likely slip; case is ignored when comparing."""
    by_lower = {key.lower(): key for key in printed}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def parse_output(text: str, name: str) -> ParsedOutput:
    """Parse a whole captured output at once (for logs read back from disk)."""
    parser = MetricParser(name)
    for line in text.split("\n"):
        parser.feed(line)
    return parser.result()
