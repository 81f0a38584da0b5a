"""Fit sin(x) on [-3, 3] with a polynomial trained by gradient descent.

The editable half of the sine study: Ratchet's proposer may change anything
here. The fixed half, evaluate.py, reads the coefficients this script writes
to coefficients.json and scores them against sin(x); it never imports this
file. The defaults below are deliberately untuned, so there is room to improve.

Run: python train.py   (reads RATCHET_SEED and RATCHET_DEADLINE when set)
"""

import json
import math
import os
import random
import time

# --- hyperparameters -----------------------------------------------------------

DEGREE = 5  # highest power of x; sin is odd, so odd degrees carry the fit
LEARNING_RATE = 0.03  # gradient-descent step on inputs scaled to [-1, 1]
MOMENTUM = 0.5  # heavy-ball momentum: speeds up the slow high-order terms
STEPS = 200  # full-batch gradient steps
N_POINTS = 32  # training points, evenly spaced over the domain
INIT_SCALE = 0.5  # spread of the random initial coefficients
WEIGHT_DECAY = 3e-3  # L2 penalty on the coefficients: steadies the fit, biases it

X_MAX = 3.0  # the domain is [-X_MAX, X_MAX], fixed by evaluate.py (ratchet: fixed)

# --- data and model -------------------------------------------------------------


def training_data() -> tuple[list[float], list[float]]:
    """Evenly spaced points on the domain, scaled to [-1, 1], and their targets."""
    ts = [2 * i / (N_POINTS - 1) - 1 for i in range(N_POINTS)]  # (ratchet: fixed)
    return ts, [math.sin(X_MAX * t) for t in ts]


def predict(coefficients: list[float], t: float) -> float:
    """The polynomial at t (Horner's rule, highest power first)."""
    value = 0.0
    for c in reversed(coefficients):
        value = value * t + c
    return value


def gradient(coefficients: list[float], ts: list[float], ys: list[float]) -> list[float]:
    """Gradient of half the mean squared error plus the L2 penalty."""
    grad = [WEIGHT_DECAY * c for c in coefficients]
    for t, y in zip(ts, ys, strict=True):
        error = (predict(coefficients, t) - y) / len(ts)
        power = error
        for k in range(len(grad)):
            grad[k] += power
            power *= t
    return grad


# --- training -------------------------------------------------------------------


def train() -> list[float]:
    """Gradient descent with momentum; stops early if the harness deadline is near."""
    rng = random.Random(int(os.environ.get("RATCHET_SEED", "0")))
    coefficients = [rng.gauss(0, INIT_SCALE) for _ in range(DEGREE + 1)]
    velocity = [0.0] * len(coefficients)
    ts, ys = training_data()
    stop_at = float(os.environ.get("RATCHET_DEADLINE", "inf")) - 1
    for _ in range(STEPS):
        grad = gradient(coefficients, ts, ys)
        for k, g in enumerate(grad):
            velocity[k] = MOMENTUM * velocity[k] - LEARNING_RATE * g
            coefficients[k] += velocity[k]
        if time.time() > stop_at:
            break
    return coefficients


def main() -> None:
    """Train, write coefficients.json in powers of x, print a summary line."""
    scaled = train()
    ts, ys = training_data()
    loss = sum((predict(scaled, t) - y) ** 2 for t, y in zip(ts, ys, strict=True)) / len(ts)
    coefficients = [c / X_MAX**k for k, c in enumerate(scaled)]
    with open("coefficients.json", "w") as f:
        json.dump({"coefficients": coefficients}, f)
    print(f"train_mse: {loss:.6g}")


if __name__ == "__main__":
    main()
