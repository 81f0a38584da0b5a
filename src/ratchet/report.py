"""The study report: ``progress.png`` and ``report.md``.

The figure follows karpathy/autoresearch's analysis notebook: experiment
number on x, the metric on y, non-kept measured experiments as small grey
dots, the baseline and kept experiments as larger green points labelled with
their description, and a step line of the incumbent's value.

Decisions worth knowing:

- The y range is set by the baseline and the kept experiments (the frontier)
  plus a margin, as the notebook does. A discarded experiment far worse than
  that (a diverged run) is drawn as a grey triangle on the edge instead of
  squashing the frontier into one pixel. The axis is logarithmic when the
  frontier spans more than two orders of magnitude.
- Experiments without a metric (crash, timeout, rejected, interrupted) are
  small red crosses along the bottom edge, so failures stay visible.
- "Best" is the incumbent (``models.incumbent``: the latest baseline or
  keep), the same best as ``ratchet status``, the console and the run's
  summary; discarded experiments never count, even when their number looks
  better (the judge had a reason), and neither does an earlier keep whose
  noisy mean happens to look better than the latest.
- A hit's delta is measured against the incumbent it replaced: the kept or
  baseline experiment whose commit is its parent, else the previous keep.
- The keep rate is keeps over the experiments after the baseline (running
  ones excluded).
- matplotlib is imported inside ``write_report`` and used through its object
  API with the Agg canvas, so importing Ratchet costs nothing and no global
  backend is switched.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import KEPT, MEASURES_COMMIT, STATUSES, Experiment, gain, incumbent
from .safetext import printable

__all__ = ["Hit", "Summary", "summarize", "render_markdown", "write_report"]

_GREEN, _DARK_GREEN, _GREY, _RED = "#2ecc71", "#1a7a3a", "#bbbbbb", "#d62728"
_LABEL_CHARS = 45
_TOP_HITS = 25
_FAILED = "no metric (crash, timeout...)"


@dataclass(frozen=True)
class Hit:
    """A kept experiment and how much it improved on the incumbent it replaced."""

    experiment: Experiment
    previous: float
    gain: float  # positive = better, in the goal's direction

    @property
    def change(self) -> float:
        """The signed change of the metric itself (new minus previous)."""
        return float(self.experiment.metric) - self.previous


@dataclass(frozen=True)
class Summary:
    """The numbers report.md shows, computed once from the experiments."""

    total: int
    counts: dict[str, int]
    baseline: Experiment | None
    best: Experiment | None
    improvement_pct: float | None
    keeps: int
    after_baseline: int
    hits: list[Hit]
    voided: tuple[Experiment, ...] = ()  # keeps invalidated later (`ratchet invalidate`)

    @property
    def keep_rate(self) -> float | None:
        """Keeps per experiment after the baseline, or None before any."""
        return self.keeps / self.after_baseline if self.after_baseline else None


def _frontier(experiments: list[Experiment]) -> list[Experiment]:
    """The measured baseline and kept experiments, in order; voided keeps are not on it."""
    return [e for e in experiments if e.status in KEPT and e.metric is not None and not e.void]


def summarize(experiments: list[Experiment], goal: str) -> Summary:
    """Counts, baseline, best, improvement, keep rate and top hits."""
    tally = Counter(e.status for e in experiments)
    order = [s for s in STATUSES if s in tally] + sorted(set(tally) - set(STATUSES))
    counts = {s: tally[s] for s in order}
    frontier = _frontier(experiments)
    baseline = next((e for e in frontier if e.status == "baseline"), None)
    best = incumbent(frontier)
    return Summary(
        total=len(experiments),
        counts=counts,
        baseline=baseline,
        best=best,
        improvement_pct=_improvement(baseline, best, goal),
        keeps=counts.get("keep", 0),
        after_baseline=sum(e.status not in ("baseline", "running") for e in experiments),
        hits=_hits(experiments, goal),
        voided=tuple(e for e in experiments if e.void is not None),
    )


def _improvement(baseline: Experiment | None, best: Experiment | None, goal: str) -> float | None:
    """Percent better than the baseline (positive = better), or None when undefined."""
    if baseline is None or best is None or baseline.metric == 0:
        return None
    base, top = float(baseline.metric), float(best.metric)
    return 100.0 * gain(top, base, goal) / abs(base)


def _hits(experiments: list[Experiment], goal: str) -> list[Hit]:
    """Kept experiments ranked by their gain over the incumbent each replaced."""
    by_commit: dict[str, float] = {}
    running: float | None = None
    hits = []
    for e in _frontier(experiments):
        metric = float(e.metric)
        previous = by_commit.get(e.parent or "", running)
        if e.status == "keep" and previous is not None:
            hits.append(Hit(e, previous, gain(metric, previous, goal)))
        if e.commit:
            by_commit[e.commit] = metric
        running = metric  # the incumbent's value when the next keep replaced it
    return sorted(hits, key=lambda h: -h.gain)


# --- report.md ----------------------------------------------------------------


def _num(value: float | None) -> str:
    """A metric value, compactly."""
    return "n/a" if value is None else f"{value:.6g}"


def _where(e: Experiment) -> str:
    """``experiment 7, commit `abc1234```."""
    commit = f", commit `{e.commit[:7]}`" if e.commit else ""
    return f"experiment {e.id}{commit}"


def _cell(text: str) -> str:
    """Text safe for one markdown table cell."""
    return printable(text).replace("|", "\\|")


def render_markdown(summary: Summary, *, metric_name: str, goal: str, title: str) -> str:
    """The text of report.md."""
    lines = [f"# {title}: ratchet report", "", "| | |", "|---|---|"]
    lines.append(f"| metric | {metric_name} ({goal}) |")
    for label, e in (("baseline", summary.baseline), ("best", summary.best)):
        value = f"{_num(e.metric)} ({_where(e)})" if e else "not measured"
        lines.append(f"| {label} {metric_name} | {value} |")
    pct = summary.improvement_pct
    lines.append(f"| improvement | {'n/a' if pct is None else f'{pct:.2f} %'} vs baseline |")
    lines.append(f"| experiments | {summary.total} |")
    rate = summary.keep_rate
    lines.append(
        f"| keep rate | {summary.keeps} of {summary.after_baseline} after the baseline"
        + ("" if rate is None else f" ({100 * rate:.1f} %)")
        + " |"
    )
    lines += ["", "## Experiments by status", "", "| status | count |", "|---|---|"]
    lines += [f"| {status} | {n} |" for status, n in summary.counts.items()]
    if not summary.counts:
        lines.append("| (none yet) | 0 |")
    lines += ["", *_hits_table(summary.hits, metric_name)]
    if summary.voided:
        lines += ["", "## Voided keeps", "", "| experiment | description | reason |"]
        lines.append("|---|---|---|")
        lines += [
            f"| {e.id} | {_cell(e.description)} | {_cell(e.void or '')} |" for e in summary.voided
        ]
    lines += ["", "![progress](progress.png)", ""]
    return "\n".join(lines)


def _hits_table(hits: list[Hit], metric_name: str) -> list[str]:
    """The "Top hits" section."""
    lines = ["## Top hits", ""]
    if not hits:
        return [*lines, "No kept experiment yet."]
    lines += [
        "Kept experiments ranked by their gain over the incumbent each replaced.",
        "",
        f"| rank | experiment | {metric_name} | change | vs incumbent | description |",
        "|---|---|---|---|---|---|",
    ]
    for rank, hit in enumerate(hits[:_TOP_HITS], start=1):
        rel = f"{100 * hit.change / abs(hit.previous):+.2f} %" if hit.previous else "n/a"
        e = hit.experiment
        lines.append(
            f"| {rank} | {e.id} | {_num(e.metric)} | {hit.change:+.6g} | {rel} "
            f"| {_cell(e.description)} |"
        )
    if len(hits) > _TOP_HITS:
        lines += ["", f"{len(hits) - _TOP_HITS} smaller hits not shown (see `ratchet log`)."]
    return lines


# --- progress.png ---------------------------------------------------------------


def _short(text: str) -> str:
    """A description short enough for a point label."""
    text = printable(text)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 3] + "..."


def _title(summary: Summary, title: str, metric_name: str) -> str:
    """Study name, counts and improvement, on one line."""
    text = f"{title}: {summary.total} experiments, {summary.keeps} kept"
    base, best, pct = summary.baseline, summary.best, summary.improvement_pct
    if base is None or best is None or pct is None:
        return text
    change = f"{metric_name} {base.metric:.4g} → {best.metric:.4g}"
    return f"{text}, {change} ({pct:.2f}% better)"


def _y_range(frontier: list[float], log: bool) -> tuple[float, float]:
    """Limits around the frontier: a small margin below, room above for the labels."""
    lo, hi = min(frontier), max(frontier)
    if log:
        ratio = hi / lo
        return lo / ratio**0.08, hi * ratio**0.35
    span = (hi - lo) or abs(hi) * 0.1 or 1.0
    return lo - 0.1 * span, hi + 0.35 * span


def _draw(ax: Any, experiments: list[Experiment], summary: Summary, goal: str) -> None:
    """Points, labels, the incumbent's step line and the off-scale / failure markers."""
    frontier = _frontier(experiments)
    values = [float(e.metric) for e in frontier]
    log = min(values) > 0 and max(values) / min(values) > 100
    if log:
        ax.set_yscale("log")
    lo, hi = _y_range(values, log)
    index = {id(e): i for i, e in enumerate(experiments)}
    _draw_others(ax, experiments, index, lo, hi)
    _draw_frontier(ax, frontier, index, goal)
    ax.set_ylim(lo, hi)


def _draw_others(
    ax: Any, experiments: list[Experiment], index: dict[int, int], lo: float, hi: float
) -> None:
    """Grey dots for measured non-kept experiments, edge markers for the rest."""
    others = [
        e
        for e in experiments
        if (e.status not in MEASURES_COMMIT or e.void is not None) and e.metric is not None
    ]
    inside = [(index[id(e)], e.metric) for e in others if lo <= e.metric <= hi]
    if inside:
        xs, ys = zip(*inside, strict=True)
        ax.scatter(xs, ys, c=_GREY, s=14, alpha=0.7, zorder=2, label="discarded")
    edge = ax.get_xaxis_transform()  # x in data, y in axes fraction: pinned to an edge
    marks = [
        ([index[id(e)] for e in others if e.metric > hi], 0.98, "^", _GREY, "off scale"),
        ([index[id(e)] for e in others if e.metric < lo], 0.02, "v", _GREY, "off scale"),
        ([index[id(e)] for e in experiments if e.metric is None], 0.02, "x", _RED, _FAILED),
    ]
    labelled = set()
    for xs, y, marker, colour, label in marks:
        if xs:
            label = "_nolegend_" if label in labelled else label
            labelled.add(label)
            style = {"marker": marker, "c": colour, "s": 18, "zorder": 2, "clip_on": False}
            ax.scatter(xs, [y] * len(xs), transform=edge, label=label, **style)


def _draw_frontier(ax: Any, frontier: list[Experiment], index: dict[int, int], goal: str) -> None:
    """Green labelled points and the incumbent's step line."""
    xs = [index[id(e)] for e in frontier]
    ys = [float(e.metric) for e in frontier]
    ax.scatter(
        xs,
        ys,
        c=_GREEN,
        s=55,
        zorder=4,
        edgecolors="black",
        linewidths=0.5,
        label="baseline and kept",
    )
    last = max(index.values())
    ax.step(  # the incumbent's value over time: each keep replaced the one before
        [*xs, last],
        [*ys, ys[-1]],
        where="post",
        color="#27ae60",
        linewidth=2,
        alpha=0.7,
        zorder=3,
        label="best (the incumbent)",
    )
    for x, y, e in zip(xs, ys, frontier, strict=True):
        label = _short(e.description) or e.status
        ax.annotate(
            label,
            (x, y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color=_DARK_GREEN,
            rotation=30,
            ha="left",
            va="bottom",
        )


def _figure(
    experiments: list[Experiment], summary: Summary, metric_name: str, goal: str, title: str
) -> Any:
    """The whole progress figure (matplotlib imported here, never at module import)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 7), dpi=120)
    ax = fig.add_subplot()
    ax.set_title(_title(summary, title, metric_name), fontsize=13, pad=12)
    ax.set_xlabel("Experiment #")
    ax.set_ylabel(f"{metric_name} ({'higher' if goal == 'maximize' else 'lower'} is better)")
    ax.grid(True, alpha=0.2)
    if not experiments or not _frontier(experiments):
        message = (
            "no experiments yet" if not experiments else "no measured baseline or kept experiment"
        )
        ax.text(
            0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#666666"
        )
        if experiments:
            index = {id(e): i for i, e in enumerate(experiments)}
            _draw_others(ax, experiments, index, -math.inf, math.inf)
            ax.set_xlim(-0.5, len(experiments) - 0.5)
    else:
        _draw(ax, experiments, summary, goal)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


def write_report(
    experiments: list[Experiment],
    *,
    metric_name: str,
    goal: str,
    out_dir: Path,
    title: str = "",
) -> tuple[Path, Path]:
    """Write progress.png and report.md into ``out_dir`` and return their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or "ratchet"
    summary = summarize(experiments, goal)
    fig = _figure(experiments, summary, metric_name, goal, title)
    png = out_dir / "progress.png"
    FigureCanvasAgg(fig)  # attach the Agg canvas: no pyplot, no global backend switch
    fig.savefig(png, bbox_inches="tight")
    md = out_dir / "report.md"
    md.write_text(render_markdown(summary, metric_name=metric_name, goal=goal, title=title))
    return png, md
