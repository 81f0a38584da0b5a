"""The study report: ``progress.png`` and ``report.md``.

The figure follows karpathy/autoresearch's analysis notebook: experiment
number on x (the ledger id, as ``ratchet show ID`` takes it, in whole-number
ticks), the metric on y, non-kept measured experiments as small grey
dots, the baseline and kept experiments as larger green points labelled with
their description, and a step line of the incumbent's value.

Decisions worth knowing:

- The y range is set by the baseline and the kept experiments (the frontier)
  plus a margin, as the notebook does. A discarded experiment far worse than
  that (a diverged run) is drawn as a grey triangle on the edge instead of
  squashing the frontier into one pixel. The axis is logarithmic when the
  frontier spans more than two orders of magnitude.
- Candidates that ran and failed (crash, timeout, pruned) are small red
  crosses along the bottom edge, so failures stay visible; proposals refused
  before they ran (rejected) are small magenta ticks there.
- Only experiments count and are drawn: a re-measurement of the incumbent
  (``remeasure``) measures no change, and a "(no proposal)" row records a
  proposer that failed to propose. report.md counts them apart.
- Labels of kept experiments never overlap: each is placed beside its point
  where it collides with no label placed before (the latest keep first), or
  left out (report.md's table has every description).
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

from .models import FAILED, KEPT, MEASURES_COMMIT, STATUSES, Experiment, gain, incumbent
from .safetext import clip, counted, printable

__all__ = [
    "Hit",
    "Summary",
    "is_experiment",
    "is_proposal_failure",
    "summarize",
    "render_markdown",
    "write_report",
]

_GREEN, _DARK_GREEN, _GREY, _RED = "#2ecc71", "#1a7a3a", "#bbbbbb", "#d62728"
_MAGENTA = "#b03aa0"
_LABEL_CHARS = 45
_TOP_HITS = 25
_FAILED = "crash, timeout or pruned"
_REJECTED = "rejected (never ran)"
# Where a label may go beside its point (offset in points, horizontal alignment), in order.
_LABEL_SPOTS = ((6, 6, "left"), (6, -14, "left"), (-6, 6, "right"), (-6, -14, "right"))


def is_proposal_failure(e: Experiment) -> bool:
    """A "(no proposal)" row: the proposer failed or answered nothing applicable."""
    return e.commit is None and bool(e.meta.get("proposer_failed") or e.meta.get("unusable"))


def is_experiment(e: Experiment) -> bool:
    """Whether a ledger row counts as an experiment: not a re-measurement, not a non-proposal."""
    return e.status != "remeasure" and not is_proposal_failure(e)


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
    remeasures: int = 0  # rows that re-measured the incumbent (not experiments)
    no_proposal: int = 0  # rows of a proposer that failed to propose (not experiments)

    @property
    def keep_rate(self) -> float | None:
        """Keeps per experiment after the baseline, or None before any."""
        return self.keeps / self.after_baseline if self.after_baseline else None


def _frontier(experiments: list[Experiment]) -> list[Experiment]:
    """The measured baseline and kept experiments, in order; voided keeps are not on it."""
    return [e for e in experiments if e.status in KEPT and e.metric is not None and not e.void]


def summarize(rows: list[Experiment], goal: str) -> Summary:
    """Counts, baseline, best, improvement, keep rate and top hits (of experiments only)."""
    experiments = [e for e in rows if is_experiment(e)]
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
        remeasures=sum(e.status == "remeasure" for e in rows),
        no_proposal=sum(is_proposal_failure(e) for e in rows),
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
    apart = _not_counted(summary)
    if apart:
        lines += ["", f"Not counted as experiments: {apart}."]
    lines += ["", *_hits_table(summary.hits, metric_name)]
    if summary.voided:
        lines += ["", "## Voided keeps", "", "| experiment | description | reason |"]
        lines.append("|---|---|---|")
        lines += [
            f"| {e.id} | {_cell(e.description)} | {_cell(e.void or '')} |" for e in summary.voided
        ]
    lines += ["", "![progress](progress.png)", ""]
    return "\n".join(lines)


def _not_counted(summary: Summary) -> str:
    """The rows the counts leave out, in words; "" when there are none."""
    parts = []
    if summary.remeasures:
        parts.append(f"{counted(summary.remeasures, 're-measurement')} of the incumbent")
    if summary.no_proposal:
        parts.append(f"{counted(summary.no_proposal, 'proposer failure')} (no proposal)")
    return " and ".join(parts)


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
    return clip(text, _LABEL_CHARS)


def _title(summary: Summary, title: str, metric_name: str) -> str:
    """Study name, counts and improvement, on one line."""
    text = f"{title}: {counted(summary.total, 'experiment')}, {summary.keeps} kept"
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
    _draw_others(ax, experiments, lo, hi)
    _draw_frontier(ax, frontier, max(e.id for e in experiments))
    ax.set_ylim(lo, hi)
    _label(ax, frontier)


def _draw_others(ax: Any, experiments: list[Experiment], lo: float, hi: float) -> None:
    """Grey dots for measured non-kept experiments, edge markers for the rest."""
    others = [
        e
        for e in experiments
        if (e.status not in MEASURES_COMMIT or e.void is not None) and e.metric is not None
    ]
    inside = [(e.id, e.metric) for e in others if lo <= e.metric <= hi]
    if inside:
        xs, ys = zip(*inside, strict=True)
        ax.scatter(xs, ys, c=_GREY, s=14, alpha=0.7, zorder=2, label="discarded")
    edge = ax.get_xaxis_transform()  # x in data, y in axes fraction: pinned to an edge
    unmeasured = [e for e in experiments if e.metric is None]
    marks = [
        ([e.id for e in others if e.metric > hi], 0.98, "^", _GREY, "off scale"),
        ([e.id for e in others if e.metric < lo], 0.02, "v", _GREY, "off scale"),
        ([e.id for e in unmeasured if e.status in FAILED], 0.02, "x", _RED, _FAILED),
        ([e.id for e in unmeasured if e.status == "rejected"], 0.02, "|", _MAGENTA, _REJECTED),
    ]
    labelled = set()
    for xs, y, marker, colour, label in marks:
        if xs:
            label = "_nolegend_" if label in labelled else label
            labelled.add(label)
            style = {"marker": marker, "c": colour, "s": 18, "zorder": 2, "clip_on": False}
            ax.scatter(xs, [y] * len(xs), transform=edge, label=label, **style)


def _draw_frontier(ax: Any, frontier: list[Experiment], last: int) -> None:
    """Green points and the incumbent's step line, up to experiment ``last``."""
    xs = [e.id for e in frontier]
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


def _label(ax: Any, frontier: list[Experiment]) -> None:
    """Each kept point's description where it covers no point nor label placed before, or none.

    The latest keep (the incumbent) is placed first, so it always has its
    label; the limits must be final, as positions are measured on screen.
    """
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    radius = 5.0  # pixels around each point that no label may cover
    points = ax.transData.transform([(e.id, float(e.metric)) for e in frontier])
    taken: list[Any] = [
        Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in points
    ]
    for e in reversed(frontier):
        for dx, dy, align in _LABEL_SPOTS:
            note = ax.annotate(
                _short(e.description) or e.status,
                (e.id, float(e.metric)),
                textcoords="offset points",
                xytext=(dx, dy),
                fontsize=8,
                color=_DARK_GREEN,
                ha=align,
                va="bottom",
            )
            box = note.get_window_extent(renderer).expanded(1.05, 1.15)
            if not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            note.remove()


def _figure(
    experiments: list[Experiment], summary: Summary, metric_name: str, goal: str, title: str
) -> Any:
    """The whole progress figure (matplotlib imported here, never at module import).

    ``experiments`` are experiments only (``is_experiment``); x is their id.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(14, 7), dpi=120)
    FigureCanvasAgg(fig)  # the Agg canvas: no pyplot, no global backend switch
    ax = fig.add_subplot()
    ax.set_title(_title(summary, title, metric_name), fontsize=13, pad=12)
    ax.set_xlabel("Experiment #")
    ax.set_ylabel(f"{metric_name} ({'higher' if goal == 'maximize' else 'lower'} is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experiment numbers, never 2.5
    ax.grid(True, alpha=0.2)
    if not experiments or not _frontier(experiments):
        message = (
            "no experiments yet" if not experiments else "no measured baseline or kept experiment"
        )
        ax.text(
            0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#666666"
        )
        if experiments:
            _draw_others(ax, experiments, -math.inf, math.inf)
            ids = [e.id for e in experiments]
            ax.set_xlim(min(ids) - 0.5, max(ids) + 0.5)
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
    """Write progress.png and report.md into ``out_dir`` and return their paths.

    ``experiments`` are ledger rows; re-measurements and "(no proposal)" rows
    are counted apart and not drawn.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or "ratchet"
    summary = summarize(experiments, goal)
    fig = _figure([e for e in experiments if is_experiment(e)], summary, metric_name, goal, title)
    png = out_dir / "progress.png"
    fig.savefig(png, bbox_inches="tight")
    md = out_dir / "report.md"
    md.write_text(render_markdown(summary, metric_name=metric_name, goal=goal, title=title))
    return png, md
