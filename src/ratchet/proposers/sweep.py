"""The sweep proposer: hyperparameter search with Optuna, driven by Ratchet.

Where ``mutate`` nudges one to three literals of the incumbent, ``sweep``
treats the study as a black-box function of its hyperparameters and lets a
model-based sampler (Optuna's TPE by default, CMA-ES or random as options,
``[search] sampler``) choose a whole configuration per experiment.

Decisions worth knowing:

- **The space**: ``[search.space]`` when declared (``LR = { low = 1e-4,
  high = 1e-1, log = true }``; two TOML integer bounds make an int;
  ``choices = [...]`` a categorical, strings and booleans included). Each
  name is a literal the editable code assigns (``LR = 0.01``, a keyword
  ``lr=0.01``, a dict key), found with mutate's literal finder. Without a
  declared space, every hyperparameter-position literal mutate would touch
  (inside the EVOLVE-BLOCK regions when the study limits them) gets a range
  around its value: x0.1..x10 on a log scale for a float, /4..x4 for an
  int, powers of two for a power of two of 8 or more, and 0.001..1 - d/10
  for momentum-like decimals (d = 1 - value).
- **Samplers for expensive trials**: TPE models after 2 random trials (plus
  the baseline), not Optuna's default 10, since each trial here is a whole
  experiment; its log-scale prior is centred on the baseline's values, the
  middle of each auto range. CMA-ES starts at the middle of each range, which
  for the log-scale auto ranges is the baseline's value too.
- **Ask/tell, with Ratchet holding the results**: each call rebuilds an
  in-memory Optuna study from ``Context.history`` — every sweep experiment
  of this tag with its recorded params (``Proposal.meta["params"]``) and the
  metric the judge decided on (for the noise-aware judge, the value it kept
  or discarded on, not a single noisy sample); crashes, timeouts,
  rejections and runs that broke a ``[metric] constraint`` (a discard whose
  reason starts ``constraint: ``, ``constraints.broke``) are told as failed
  trials, pruned runs as pruned ones. Then it asks for one trial and
  writes its values into the literals. No storage file, no state outside
  the ledger: a resumed run continues the same search.
- **A stable space**: the auto space is fixed by the first sweep proposal
  and recorded in its meta, so later calls (from other parents) reuse it
  rather than re-centring on the incumbent. The baseline, when the space
  was read from it, is told as the first trial.
- **It never runs out** of a continuous space. A space of choices and ints
  only can be exhausted: after 20 asks that all repeat a tried point, the
  run ends cleanly (``ProposalsExhausted``).
"""

from __future__ import annotations

import ast
import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constraints import broke
from ..errors import ConfigError, ProposalsExhausted
from ..models import Context, Experiment, Proposal
from ..study import SpaceParam
from .mutate import Literal, editable_literals, format_number, rewrite
from .regions import allowed_lines

if TYPE_CHECKING:
    import optuna

__all__ = ["SweepProposer", "Target", "auto_space"]

_ASKS = 20  # asks before a space of repeating points counts as exhausted
_STARTUP = 2  # TPE's random trials before it models (Optuna's default, 10, is for cheap trials)
_FAILED = ("crash", "timeout", "rejected", "unconfirmed")


@dataclass(frozen=True)
class Target:
    """A literal the sweep sets: where it is, its current text, and its space key."""

    key: str
    literal: Literal
    kind: str  # "number", or "constant" for a str/bool assignment found by name

    def render(self, value: Any) -> str:
        """The source text for ``value`` in the literal's own style."""
        if isinstance(value, bool) or isinstance(value, str):
            return repr(value)
        if isinstance(value, int) or (self.literal.is_int and float(value).is_integer()):
            return format_number(int(value), self.literal.text if self.literal.is_int else "0")
        return format_number(float(value), self.literal.text if not self.literal.is_int else "0.0")


class SweepProposer:
    """Optuna ask/tell over the study's hyperparameters; see the module docstring."""

    name = "sweep"

    def __init__(
        self,
        space: Mapping[str, SpaceParam] | None = None,
        sampler: str = "tpe",
        editable: Sequence[str] = (),
    ) -> None:
        if sampler not in ("tpe", "cmaes", "random"):
            raise ConfigError(f"unknown sampler {sampler!r} — use tpe, cmaes or random")
        self.space = dict(space or {})
        self.sampler = sampler
        self.editable = tuple(editable)

    def propose(self, context: Context) -> Proposal:
        """Rebuild the Optuna study from history, ask one trial, write it into the code."""
        with _quiet_optuna():
            targets = self._targets(context.files)
            distributions, origin = self._space(context, targets)
            study = self._study(context, distributions, origin)
            params = _ask(study, distributions)
        return _proposal(context.files, targets, params, distributions, self.sampler, origin)

    # -- the space ---------------------------------------------------------------

    def _targets(self, files: dict[str, str]) -> dict[str, Target]:
        """The literals the sweep sets, by space key."""
        if self.space:
            return {name: _declared(files, name, self.editable) for name in self.space}
        found = auto_targets(files, self.editable)
        if not found:
            names = ", ".join(sorted(files)) or "no editable files"
            raise ProposalsExhausted(
                f"sweep has nothing to search: no numeric hyperparameter in the editable code"
                f" ({names}) — declare one in [search.space] or use --proposer llm."
            )
        return found

    def _space(
        self, context: Context, targets: dict[str, Target]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The distributions (declared, recorded earlier, or new) and the origin record."""
        from optuna.distributions import json_to_distribution

        if self.space:
            dists = {k: _declared_distribution(k, p) for k, p in self.space.items()}
            return dists, {"commit": context.parent_commit, "values": _values(targets)}
        for exp in reversed(context.history):
            recorded = _recorded_space(exp, context.tag)
            if recorded is not None and set(recorded[0]) == set(targets):
                dists = {k: json_to_distribution(v) for k, v in recorded[0].items()}
                return dists, recorded[1]
        dists = {k: auto_distribution(t.literal) for k, t in targets.items()}
        return dists, {"commit": context.parent_commit, "values": _values(targets)}

    # -- the Optuna study --------------------------------------------------------

    def _study(
        self, context: Context, distributions: dict[str, Any], origin: dict[str, Any]
    ) -> optuna.Study:
        """An in-memory study holding every earlier sweep trial of this tag."""
        import optuna

        seed = (context.seed * 1_000_003 + len(context.history)) % 2**32  # numpy's range
        samplers = {
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=_STARTUP),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(
                seed=seed, warn_independent_sampling=False
            ),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        }
        direction = "minimize" if context.goal == "minimize" else "maximize"
        study = optuna.create_study(direction=direction, sampler=samplers[self.sampler]())
        for trial in _trials(context, distributions, origin):
            study.add_trial(trial)
        return study


def auto_targets(files: dict[str, str], editable: Sequence[str] = ()) -> dict[str, Target]:
    """Mutate's hyperparameter-position literals (all of them when none is), by space key."""
    literals = [lit for lit in editable_literals(files, editable) if lit.value != 0]
    chosen = [lit for lit in literals if lit.tier == "hyper"] or literals
    several = len({lit.path for lit in chosen}) > 1
    return {
        (f"{lit.path}:{lit.name}" if several else lit.name): Target(
            f"{lit.path}:{lit.name}" if several else lit.name, lit, "number"
        )
        for lit in chosen
    }


def auto_space(files: dict[str, str], editable: Sequence[str] = ()) -> dict[str, Any]:
    """The distributions the sweep uses when ``[search.space]`` is not declared."""
    return {k: auto_distribution(t.literal) for k, t in auto_targets(files, editable).items()}


def auto_distribution(lit: Literal) -> Any:
    """A range around the literal's value (see the module docstring)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    value = lit.value
    if lit.is_int:
        magnitude, sign = abs(int(value)), 1 if value > 0 else -1
        if magnitude >= 8 and magnitude & (magnitude - 1) == 0:
            powers = [magnitude >> 2, magnitude >> 1, magnitude, magnitude << 1, magnitude << 2]
            return CategoricalDistribution([sign * p for p in powers])
        low, high = max(1, round(magnitude / 4)), max(magnitude * 4, magnitude + 3)
        if sign < 0:
            return IntDistribution(-high, -low)
        return IntDistribution(low, high, log=True)
    rate = value >= 0.9 or (value >= 0.5 and "e" not in lit.text.lower() and _rate_name(lit))
    if rate and value < 1:
        distance = 1 - value
        return FloatDistribution(max(1e-3, 1 - min(1.0, 10 * distance)), 1 - distance / 10)
    if value > 0:
        return FloatDistribution(value / 10, value * 10, log=True)
    return FloatDistribution(value * 10, value / 10)


def _rate_name(lit: Literal) -> bool:
    """Momentum-like names, as mutate reads them."""
    from .mutate import _RATE_NAME

    return bool(_RATE_NAME.search(lit.name))


def _declared_distribution(name: str, param: SpaceParam) -> Any:
    """The Optuna distribution of one ``[search.space]`` entry."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if param.choices is not None:
        return CategoricalDistribution(list(param.choices))
    assert param.low is not None and param.high is not None  # checked by SpaceParam
    if param.integer:
        step = int(param.step or 1)
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=step)
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def _declared(files: dict[str, str], name: str, editable: Sequence[str]) -> Target:
    """The literal a ``[search.space]`` name refers to, or a ``ConfigError`` naming the fix."""
    for lit in editable_literals(files, editable):
        if name in (lit.name, f"{lit.path}:{lit.name}"):
            return Target(name, lit, "number")
    for lit in _constants(files, editable):
        if lit.name == name:
            return Target(name, lit, "constant")
    names = ", ".join(sorted(files)) or "no editable files"
    raise ConfigError(
        f"[search.space] {name} names no literal in the editable code ({names})"
        f" — assign it a constant there (e.g. {name} = 0.01) or fix the name"
    )


def _constants(files: dict[str, str], editable: Sequence[str]) -> Iterator[Literal]:
    """``NAME = "text"`` / ``NAME = True`` assignments: categoricals that are not numbers."""
    for path in sorted(p for p in files if p.endswith(".py")):
        source = files[path]
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.encode("utf-8").splitlines(keepends=True)
        allowed = allowed_lines(path, source, editable)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if not (isinstance(target, ast.Name) and isinstance(value, ast.Constant)):
                continue
            if not isinstance(value.value, (str, bool)) or value.lineno != value.end_lineno:
                continue
            if allowed is not None and value.lineno not in allowed:
                continue
            raw = lines[value.lineno - 1][value.col_offset : value.end_col_offset]
            yield Literal(
                path, target.id, value.lineno, value.col_offset, value.end_col_offset,
                raw.decode("utf-8"), 0.0, is_int=False, tier="hyper",
            )  # fmt: skip


def _values(targets: dict[str, Target]) -> dict[str, Any]:
    """The current values of the targets (the point the parent's code sits at)."""
    values: dict[str, Any] = {}
    for key, target in targets.items():
        text = target.literal.text
        values[key] = ast.literal_eval(text) if target.kind == "constant" else target.literal.value
    return values


def _recorded_space(exp: Experiment, tag: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    """The space (as JSON distributions) and origin an earlier sweep proposal recorded."""
    meta = exp.meta if isinstance(exp.meta, dict) else {}
    space, origin = meta.get("space"), meta.get("origin")
    if exp.tag != tag or meta.get("proposer") != "sweep" or not isinstance(space, dict):
        return None
    return space, origin if isinstance(origin, dict) else {}


def _trials(
    context: Context, distributions: dict[str, Any], origin: dict[str, Any]
) -> Iterator[Any]:
    """Frozen trials for the baseline (when the space came from it) and each sweep run."""
    from optuna.trial import TrialState, create_trial

    for exp in context.history:
        if exp.tag != context.tag:
            continue
        meta = exp.meta if isinstance(exp.meta, dict) else {}
        if exp.status == "baseline" and exp.commit == origin.get("commit"):
            params = origin.get("values")
        elif meta.get("proposer") == "sweep":
            params = meta.get("params")
        else:
            continue
        if not isinstance(params, dict) or not _fits(params, distributions):
            continue
        if meta.get("violated") or broke(exp.reason):  # a [metric] constraint failed
            state, value = TrialState.FAIL, None
        elif exp.status in ("baseline", "keep", "discard") and _finite(exp.metric):
            state, value = TrialState.COMPLETE, exp.metric
        elif exp.status == "pruned":
            state, value = TrialState.PRUNED, None
        elif exp.status in _FAILED or exp.status in ("keep", "discard"):
            state, value = TrialState.FAIL, None
        else:
            continue  # running, interrupted, remeasure: no outcome to tell
        yield create_trial(params=params, distributions=distributions, value=value, state=state)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fits(params: dict[str, Any], distributions: dict[str, Any]) -> bool:
    """True when ``params`` has every key of the space, each value inside its distribution."""
    if set(params) != set(distributions):
        return False
    try:
        return all(d._contains(d.to_internal_repr(params[k])) for k, d in distributions.items())
    except (ValueError, TypeError):
        return False


def _ask(study: optuna.Study, distributions: dict[str, Any]) -> dict[str, Any]:
    """One new point; ``ProposalsExhausted`` when a discrete space only repeats itself."""
    seen = [t.params for t in study.trials]
    for _ in range(_ASKS):
        params = study.ask(distributions).params
        if params not in seen:
            return params
        seen.append(params)
    raise ProposalsExhausted(
        f"sweep has tried every point of its {len(distributions)}-dimensional space"
        f" {len(seen)} times over — widen [search.space] or use --proposer mutate."
    )


def _proposal(
    files: dict[str, str],
    targets: dict[str, Target],
    params: dict[str, Any],
    distributions: dict[str, Any],
    sampler: str,
    origin: dict[str, Any],
) -> Proposal:
    """Write the trial's values into the literals and describe what changed."""
    from optuna.distributions import distribution_to_json

    changes = []
    for key, target in targets.items():
        text = target.render(params[key])
        if text != target.literal.text:
            changes.append((target, text))
    edits: dict[str, str] = {}
    for path in sorted({t.literal.path for t, _ in changes}):
        mine = [(t.literal, x) for t, x in changes if t.literal.path == path]
        edits[path] = rewrite(files[path], mine)
    moves = [f"{t.key} {t.literal.text} → {x}" for t, x in changes]
    description = f"sweep ({sampler}): " + (", ".join(moves) or "the parent's own values")
    return Proposal(
        description=description,
        edits=edits,
        rationale=f"Optuna {sampler} trial over {len(targets)} hyperparameters,"
        " fitted to every earlier sweep result of this tag.",
        meta={
            "proposer": "sweep",
            "sampler": sampler,
            "params": _plain(params),
            "space": {k: distribution_to_json(d) for k, d in distributions.items()},
            "origin": origin,
            "changes": [
                {"path": t.literal.path, "line": t.literal.line, "name": t.literal.name,
                 "old": t.literal.text, "new": x}
                for t, x in changes
            ],  # fmt: skip
        },
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-able params (numpy scalars from a sampler become Python numbers)."""
    import numpy
    out: dict[str, Any] = {}
    for key, value in params.items():
        out[key] = value.item() if isinstance(value, numpy.generic) else value
    return out


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines and experimental warnings off, for this call only."""
    import optuna

    level = optuna.logging.get_verbosity()  # also sets up Optuna's handler first
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)

