"""Constraints on extra metrics: parsed once, checked on each candidate's values."""

from __future__ import annotations

import math

import pytest

from ratchet.constraints import parse_constraint, parse_constraints, violation
from ratchet.errors import ConfigError

RULES = parse_constraints(["memory_gb <= 40", "runtime_s<120", "accuracy >= 0.9"])


def test_values_within_every_constraint_pass() -> None:
    assert violation(RULES, {"memory_gb": 40.0, "runtime_s": 119.9, "accuracy": 0.95}) is None
    assert violation((), {}) is None


def test_the_first_violated_constraint_is_named_with_its_value() -> None:
    reason = violation(RULES, {"memory_gb": 44.5, "runtime_s": 200.0, "accuracy": 0.95})
    assert reason == 'memory_gb = 44.5 violates the constraint "memory_gb <= 40"'
    reason = violation(RULES, {"memory_gb": 10.0, "runtime_s": 120.0, "accuracy": 0.95})
    assert reason == 'runtime_s = 120 violates the constraint "runtime_s < 120"'


def test_a_value_the_run_did_not_print_or_nan_does_not_pass() -> None:
    reason = violation(RULES, {"memory_gb": 10.0, "accuracy": 0.95})
    assert reason is not None and "runtime_s < 120" in reason and "printed no runtime_s" in reason
    reason = violation(RULES, {"memory_gb": math.nan, "runtime_s": 1.0, "accuracy": 1.0})
    assert reason is not None and "memory_gb" in reason


def test_bounds_in_scientific_notation_and_dotted_names() -> None:
    rule = parse_constraint("  params.count   >   -1.5e3 ")
    assert (rule.name, rule.op, rule.bound, rule.text) == ("params.count", ">", -1500.0, rule.text)
    assert rule.text == "params.count > -1.5e3"


@pytest.mark.parametrize("text", ["memory_gb =< 40", "memory_gb <= forty", "<= 40", "a == 1", ""])
def test_bad_constraints_say_the_expected_form(text: str) -> None:
    with pytest.raises(ConfigError, match=r'\[metric\] constraints: .* — write e.g. "memory_gb'):
        parse_constraint(text)
