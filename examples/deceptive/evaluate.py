"""Fixed evaluation of the deceptive study: the loss of knobs.json's SCALE.

With u = log10(scale), the loss is 1.1, minus a shallow Gaussian basin of
depth 0.7 at u = 0.4 (best loss 0.4), minus a funnel that starts at the end
of the ridge, u = -0.25, and falls linearly to 0 at u = -2 (the deep basin),
with a steep wall below it. The default (u = 0) scores 1.046; the ridge
between u = 0 and -0.25 scores up to 1.1. Prints `loss: VALUE`; a missing
file or a scale that is not a positive finite number ends with exit status 1.
"""

import json
import math
import sys

SHALLOW_AT, SHALLOW_DEPTH, SHALLOW_WIDTH = 0.4, 0.7, 0.25
RIDGE_END, DEEP_AT, LEVEL = -0.25, -2.0, 1.1


def fail(message: str) -> None:
    """Stop with a clear message and a non-zero exit status."""
    print(f"evaluate.py: {message}", file=sys.stderr)
    sys.exit(1)


def loss(scale: float) -> float:
    """The two-basin landscape described above."""
    u = math.log10(scale)
    value = LEVEL - SHALLOW_DEPTH * math.exp(-(((u - SHALLOW_AT) / SHALLOW_WIDTH) ** 2))
    if DEEP_AT <= u < RIDGE_END:
        value -= LEVEL * (RIDGE_END - u) / (RIDGE_END - DEEP_AT)
    elif u < DEEP_AT:
        value -= LEVEL - 3 * (DEEP_AT - u)
    return value


def main() -> None:
    """Score knobs.json and print the metric line."""
    try:
        with open("knobs.json") as f:
            scale = json.load(f).get("scale")
    except (OSError, ValueError, AttributeError) as exc:
        fail(f"knobs.json is missing or not a JSON object ({exc})")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        fail(f"knobs.json holds a scale that is not a number: {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        fail(f"the scale must be a positive finite number, got {scale!r}")
    print(f"loss: {loss(scale):.9g}")


if __name__ == "__main__":
    main()
