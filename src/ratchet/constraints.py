"""Constraints on extra metrics: ``[metric] constraints = ["memory_gb <= 40"]``.

A study prints extra ``key: number`` lines next to its metric (autoresearch's
``memory_gb``, a runtime, a model size). A constraint turns one into a rule:
a candidate that violates it is not kept, whatever its metric, and the
reason names the constraint. Pure: text in, ``Constraint`` out; values in,
the first violation's reason out. A constraint whose value the run did not
print counts as violated (a rule that cannot be checked does not pass).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ConfigError

__all__ = [
    "PREFIX", "Constraint", "parse_constraint", "parse_constraints", "violation", "broke"
]  # fmt: skip

# How the reason of a keep turned into a discard by a constraint starts (as "policy: "
# starts a rejection's), so readers such as the sweep proposer can tell it (``broke``).
PREFIX = "constraint: "

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_FORM = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.\-/]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<bound>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``name op bound``, as written in ratchet.toml (``text``)."""

    name: str
    op: str
    bound: float
    text: str

    def holds(self, value: float) -> bool:
        """True when ``value`` satisfies the constraint (NaN never does)."""
        return not math.isnan(value) and _OPERATORS[self.op](value, self.bound)


def parse_constraint(text: str) -> Constraint:
    """One constraint, or a ``ConfigError`` that shows the expected form."""
    match = _FORM.match(text)
    if not match:
        raise ConfigError(
            f"[metric] constraints: {text!r} is not NAME OP NUMBER"
            ' — write e.g. "memory_gb <= 40" (OP is one of <=, <, >=, >)'
        )
    name, op, bound = match["name"], match["op"], match["bound"]
    return Constraint(name, op, float(bound), f"{name} {op} {bound}")


def parse_constraints(texts: Sequence[str]) -> tuple[Constraint, ...]:
    """Every constraint of the list, in order."""
    return tuple(parse_constraint(text) for text in texts)


def violation(constraints: Sequence[Constraint], values: Mapping[str, float]) -> str | None:
    """The reason the first violated constraint gives, or None when all hold.

    ``values`` are the run's extra metrics (the metric itself included, if a
    constraint names it).
    """
    for constraint in constraints:
        value = values.get(constraint.name)
        if value is None:
            return (
                f'constraint "{constraint.text}" cannot be checked:'
                f" the run printed no {constraint.name}"
            )
        if not constraint.holds(value):
            return f'{constraint.name} = {value:g} violates the constraint "{constraint.text}"'
    return None


def broke(reason: str) -> bool:
    """True for the reason of a candidate discarded because it broke a constraint."""
    return reason.startswith(PREFIX)
