"""Fixed evaluation of the sine study: how well do the coefficients fit sin(x)?

Reads coefficients.json (written by train.py in the current directory) as
{"coefficients": [c0, c1, ...]} meaning c0 + c1*x + c2*x**2 + ..., and prints
the mean squared error against sin(x) on 201 evenly spaced points of [-3, 3]
as `mse: VALUE`. It never imports train.py, so a change to train.py cannot
change how it is scored. Missing, malformed or non-finite coefficients end
with a one-line message and exit status 1.
"""

import json
import math
import sys

PATH = "coefficients.json"
POINTS = [-3 + 6 * i / 200 for i in range(201)]
MAX_TERMS = 100


def fail(message: str) -> None:
    """Stop with a clear message and a non-zero exit status."""
    print(f"evaluate.py: {message}", file=sys.stderr)
    sys.exit(1)


def load(path: str) -> list[float]:
    """The coefficient list, or exit when it is missing, malformed or not finite."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        fail(f"{path} not found - train.py must write it in the current directory")
    except (OSError, ValueError) as exc:
        fail(f"{path} is not readable JSON ({exc})")
    coefficients = data.get("coefficients") if isinstance(data, dict) else None
    if not isinstance(coefficients, list) or not 1 <= len(coefficients) <= MAX_TERMS:
        fail(f'{path} needs {{"coefficients": [...]}} with 1 to {MAX_TERMS} numbers')
    for c in coefficients:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            fail(f"{path} holds a coefficient that is not a finite number: {c!r}")
    return [float(c) for c in coefficients]


def mse(coefficients: list[float]) -> float:
    """Mean squared error of the polynomial against sin on the fixed points."""
    total = 0.0
    for x in POINTS:
        value = 0.0
        for c in reversed(coefficients):
            value = value * x + c
        total += (value - math.sin(x)) ** 2
    return total / len(POINTS)


def main() -> None:
    """Score coefficients.json and print the metric line."""
    try:
        value = mse(load(PATH))
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        fail("the polynomial overflows on [-3, 3]; the mse is not finite")
    print(f"mse: {value:.9g}")


if __name__ == "__main__":
    main()
