"""The sampling protocol: how many samples, when to top up, when to re-measure. Pure.

``run/trial.py`` takes the samples and records them; the rules it follows are
here, as functions of plain data (the history, the samples so far, the study's
``[decision]``), so they are tested without processes.

- Which protocol: a judge named ``strict`` decides on one sample, so one sample
  is taken of everything and nothing is re-measured (the original autoresearch
  rule). Any other judge gets the noise-aware protocol below.
- Baseline: ``[decision] baseline_samples`` samples (seeds 0, 1, …). A
  deterministic study does not pay for repeats: when the first two samples
  are identical, sampling stops there (zero spread).
- The incumbent's samples are every sample of its commit: its baseline or
  keep row and the later re-measurements of the same commit. In a
  deterministic study a kept commit has one sample (the judge decided on it);
  its value is passed twice, so the judge sees the zero spread it needs to
  decide the next candidate on one sample too (``reference``).
- Re-measurement: after ``[decision] remeasure_every`` candidates that ran
  (``models.RAN``; rejected ones cost nothing) since the incumbent was last
  measured, it is measured again once, with a new seed, as a ``remeasure`` row,
  to catch drift (a warmer GPU, a busier machine). Skipped for a deterministic
  study (the baseline's samples had zero spread).
- Top-up: while the judge asks for more samples of a candidate, the incumbent
  is measured alongside it (``needs_top_up``; a ``remeasure`` row each), so the
  two sides have about as many samples each. Never for a deterministic study.
- Interleaving (``interleaved``: ``[decision] interleave``, by default on for a
  timing metric): the candidate is sampled in pairs with the incumbent, each
  pair run back to back, and the judge compares the pairs (``alongside``), so
  a machine that drifts slower or faster between pairs moves both sides alike.
  The order within a pair alternates (C I, I C, C I, ...: A/B/B/A), so a
  steady drift during the pairs, which would favour whichever side runs first,
  cancels over every two pairs (``benchmarks/noise.py``, table 3); the
  candidate runs first, so one that crashes or is rejected by its evaluation
  costs no incumbent run. It costs one incumbent run per candidate run, and
  the old samples of the incumbent no longer shorten a decision (a no-op
  costs about 17 runs, not 11, in ``benchmarks/noise.py``), which is why a
  study whose metric is not a time keeps the cheaper top-ups unless it asks.
  ``next_sample`` says which to run next, ``judge_now`` when the judge looks.
- Confirmation: ``confirm_reference`` and ``confirm_verdict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING, Literal

from ..models import MEASURES_COMMIT, RAN, Experiment, better
from .judge import Judge, Verdict
from .timing import is_timing

if TYPE_CHECKING:
    from ..study import Study

__all__ = [
    "CONFIRMED",
    "CONFIRM_METRIC",
    "Outcome",
    "single_sample",
    "baseline_complete",
    "incumbent_samples",
    "reference",
    "deterministic",
    "remeasure_due",
    "needs_top_up",
    "interleaved",
    "next_sample",
    "judge_now",
    "judged_reference",
    "decided",
    "confirm_reference",
    "confirm_verdict",
]

# Extras of a sample checked by [confirm]: 1.0 / 0.0, and the confirm command's value.
CONFIRMED = "ratchet.confirmed"
CONFIRM_METRIC = "ratchet.confirm"


@dataclass(frozen=True)
class Outcome:
    """How a measurement ended: what is recorded as the experiment's outcome."""

    status: str
    metric: float | None
    reason: str
    seconds: float = 0.0


def single_sample(judge: Judge) -> bool:
    """The strict rule decides on one sample: no repeats, no re-measurements."""
    return judge.name == "strict"


def baseline_complete(samples: Sequence[float], study: Study, judge: Judge) -> bool:
    """Enough baseline samples: one for strict, two equal ones, or ``baseline_samples``."""
    if single_sample(judge) or len(samples) >= study.decision.baseline_samples:
        return True
    return len(samples) == 2 and samples[0] == samples[1]


def incumbent_samples(history: Sequence[Experiment], incumbent: Experiment) -> list[float]:
    """Every sample of the incumbent's commit, re-measurements included."""
    return [
        value
        for e in history
        if e.commit == incumbent.commit and e.status in MEASURES_COMMIT
        for value in e.samples
    ]


def reference(history: Sequence[Experiment], parent: Experiment) -> list[float]:
    """What a candidate built on ``parent`` is judged against (see the module's notes)."""
    samples = incumbent_samples(history, parent) or [parent.metric or 0.0]
    if deterministic(history) and len(samples) == 1:
        return samples * 2  # known exactly: what the judge needs to see zero spread
    return samples


def deterministic(history: Sequence[Experiment]) -> bool:
    """The baseline was sampled more than once and never moved."""
    base = next((e for e in history if e.status == "baseline"), None)
    return base is not None and len(base.samples) >= 2 and len(set(base.samples)) == 1


def remeasure_due(history: Sequence[Experiment], study: Study, judge: Judge) -> bool:
    """Time to measure the incumbent again (noise-aware studies that are not deterministic)."""
    every = study.decision.remeasure_every
    if single_sample(judge) or every == 0 or deterministic(history):
        return False
    ran = 0
    for e in reversed(history):
        if e.status in MEASURES_COMMIT:
            break
        ran += e.status in RAN
    return ran >= every


def needs_top_up(samples: Sequence[float], incumbent: Sequence[float]) -> bool:
    """The incumbent would have fewer samples than the candidate's next count.

    A comparison is only as sure as its worse-measured side: with 3 incumbent
    samples no number of candidate samples lets a 95 % test keep 80 % of the
    one-sigma gains (the incumbent's own error stays at 0.58 sigma). Equal
    counts buy the most certainty per run, and the extra incumbent samples
    serve every later candidate too.
    """
    return len(incumbent) < len(samples) + 1


def interleaved(study: Study, judge: Judge) -> bool:
    """Whether candidate and incumbent are sampled in turns and compared in pairs.

    ``[decision] interleave``: true, false, or "auto" (on for a timing metric,
    ``ratchet.decide.timing.is_timing``). Never for the strict rule, which
    takes one sample of everything.
    """
    if single_sample(judge):
        return False
    setting = study.decision.interleave
    return is_timing(study.metric.name) if setting == "auto" else setting


def next_sample(
    samples: Sequence[float],
    alongside: Sequence[float],
    reference: Sequence[float],
    *,
    interleave: bool,
    exact: bool,
) -> Literal["candidate", "incumbent"]:
    """Which to measure next while the judge asks for more: the candidate or the incumbent.

    ``samples``: the candidate's so far; ``alongside``: the incumbent samples
    taken in turn with them; ``reference``: every incumbent sample the judge
    sees; ``exact``: a deterministic study (``deterministic``), which needs
    neither top-ups nor pairs. Interleaved, the samples come in pairs, the
    candidate first in even pairs and the incumbent first in odd ones (C I I C
    C I I C ...); otherwise the candidate goes first and the incumbent is
    topped up while ``needs_top_up``.
    """
    if exact:
        return "candidate"
    if interleave:
        if len(alongside) != len(samples):  # finish the pair begun
            return "candidate" if len(alongside) > len(samples) else "incumbent"
        return "candidate" if len(samples) % 2 == 0 else "incumbent"
    return "incumbent" if samples and needs_top_up(samples, reference) else "candidate"


def judge_now(
    turn: str, samples: Sequence[float], alongside: Sequence[float], *, interleave: bool
) -> bool:
    """Whether the judge looks after this sample: each candidate sample, or each whole pair."""
    if interleave:
        return bool(samples) and len(samples) == len(alongside)
    return turn == "candidate"


def judged_reference(history: Sequence[Experiment], best: Experiment) -> float | None:
    """The value a candidate is judged against: the mean of all the incumbent's samples.

    Not ``best.metric``, which is the mean of its first (baseline or keep)
    samples only; re-measurements move the reference, and this is what
    ``try`` and ``status`` print as the best.
    """
    samples = incumbent_samples(history, best)
    if samples:
        return fmean(samples)
    return best.metric


def decided(verdict: Verdict, n: int) -> tuple[str, str]:
    """Status and reason; a judge still asking for more after ``max_samples`` saw no gain."""
    if verdict.decision == "more":
        return "discard", f"undecided after {n} samples: {verdict.reason}"
    return ("keep" if verdict.decision == "keep" else "discard"), verdict.reason


def confirm_reference(incumbent: Experiment, samples: Sequence[float]) -> list[float]:
    """What a confirm value is compared with: the incumbent's confirm value, else its samples."""
    value = incumbent.extras.get(CONFIRM_METRIC)
    return [value] if value is not None else list(samples)


def confirm_verdict(
    judge: Judge,
    status: str,
    metric: float | None,
    why: str,
    reference: Sequence[float] | None,
    study: Study,
) -> tuple[bool, str]:
    """Whether a ``[confirm]`` run confirms: (confirmed, reason).

    Its value is compared with ``reference`` (``confirm_reference``): the judge
    decides on that one sample; when it cannot tell (``more``), the value must
    be strictly better than the reference's mean. With no reference (the
    baseline), a metric is enough.
    """
    name, goal = study.metric.name, study.metric.goal
    if status != "ok" or metric is None:
        return False, f"confirm {status}: {why}"
    if not reference:
        return True, f"confirm {name} {metric:.6g}"
    decision = judge.decide([metric], reference, goal).decision
    if decision == "more":
        decision = "keep" if better(metric, fmean(reference), goal) else "discard"
    ok = decision == "keep"
    word = "confirmed" if ok else "not confirmed"
    return ok, f"{word}: {name} {metric:.6g} vs {fmean(reference):.6g} by [confirm]"
