"""Pack 26 circles in the unit square so that the sum of their radii is as large as possible.

The editable half of the circle_packing study. It places the centres on
three concentric rings, then relaxes centres and radii together by gradient
ascent on "sum of radii minus a growing penalty for overlaps", and finally
shrinks the radii just enough to make the packing exactly valid. It writes
packing.json as {"circles": [[x, y, r], ...]}; the fixed half, evaluate.py,
checks and scores that file and never imports this one.

The defaults are deliberately modest, so there is room to improve: better
rings, more relaxation steps, a better penalty schedule, or a different
construction altogether (the best known sum for 26 circles is about 2.636).

Run: python initial_program.py   (reads RATCHET_DEADLINE when set)
"""

import json
import math
import os
import time

N = 26  # number of circles, fixed by evaluate.py (ratchet: fixed)
CENTRE = 0.5  # the middle of the unit square (ratchet: fixed)
TINY = 1e-12  # guards against dividing by zero and rounding past a touch (ratchet: fixed)

Circle = list[float]  # [x, y, r]

# EVOLVE-BLOCK-START
# --- construction (the part to evolve) -------------------------------------------

INNER_COUNT = 8  # circles on the inner ring; one sits in the middle, the rest go outside
INNER_RING = 0.22  # distance of the inner ring from the centre of the square
OUTER_RING = 0.42  # distance of the outer ring from the centre of the square
STEPS = 150  # gradient steps of the relaxation
LEARNING_RATE = 0.002  # step size on centres and radii
PENALTY = 10.0  # initial weight of the squared overlaps against the sum of radii
PENALTY_RATE = 0.02  # the weight grows by this fraction each step, forcing validity
MAX_STIFFNESS = 0.1  # cap on LEARNING_RATE * weight, which keeps the steps stable


def rings() -> list[list[float]]:
    """Centres: one in the middle, INNER_COUNT on the inner ring, the rest on the outer ring."""
    centres = [[CENTRE, CENTRE]]
    for count, distance in ((INNER_COUNT, INNER_RING), (N - 1 - INNER_COUNT, OUTER_RING)):
        for k in range(count):
            angle = math.tau * k / count
            x, y = math.cos(angle), math.sin(angle)
            centres.append([CENTRE + distance * x, CENTRE + distance * y])
    return [[min(max(x, 0), 1), min(max(y, 0), 1)] for x, y in centres]


def gradient(circles: list[Circle], weight: float) -> list[Circle]:
    """Gradient of sum(r) - weight * (squared overlaps with walls and between circles)."""
    grads = [[0, 0, 1] for _ in circles]
    for i, (x, y, r) in enumerate(circles):
        for axis, sign, room in ((0, 1, x), (0, -1, 1 - x), (1, 1, y), (1, -1, 1 - y)):
            over = r - room
            if over > 0:
                grads[i][2] -= weight * over
                grads[i][axis] += weight * over * sign
        for j in range(i + 1, len(circles)):
            dx, dy = x - circles[j][0], y - circles[j][1]
            distance = math.hypot(dx, dy) or TINY
            over = r + circles[j][2] - distance
            if over > 0:
                push = weight * over
                grads[i][2] -= push
                grads[j][2] -= push
                for axis, delta in ((0, dx), (1, dy)):
                    grads[i][axis] += push * delta / distance
                    grads[j][axis] -= push * delta / distance
    return grads


def relax(circles: list[Circle], stop_at: float) -> list[Circle]:
    """Gradient ascent with a growing penalty; stops early when the deadline is near."""
    weight = PENALTY
    for _ in range(STEPS):
        for circle, grad in zip(circles, gradient(circles, weight), strict=True):
            for k in range(3):
                circle[k] += LEARNING_RATE * grad[k]
            circle[0] = min(max(circle[0], 0), 1)
            circle[1] = min(max(circle[1], 0), 1)
            circle[2] = max(circle[2], 0)
        weight = min(weight * (1 + PENALTY_RATE), MAX_STIFFNESS / LEARNING_RATE)
        if time.time() > stop_at:
            break
    return circles


# EVOLVE-BLOCK-END
# --- making it valid and writing it ----------------------------------------------


def make_valid(circles: list[Circle]) -> list[Circle]:
    """Shrink radii until no circle leaves the square or overlaps another, then regrow each
    circle into the room left around it. Every circle stays in place."""
    out = [[x, y, max(0, min(r, x, y, 1 - x, 1 - y))] for x, y, r in circles]
    for _ in range(1000):
        shrunk = False
        for i, a in enumerate(out):
            for b in out[i + 1 :]:
                total = a[2] + b[2]
                distance = math.dist(a[:2], b[:2])
                if total > distance:
                    scale = distance / total * (1 - TINY)
                    a[2], b[2] = a[2] * scale, b[2] * scale
                    shrunk = True
        if not shrunk:
            break
    for i, (x, y, _) in enumerate(out):
        room = min(x, y, 1 - x, 1 - y)
        for j, other in enumerate(out):
            if j != i:
                room = min(room, math.dist((x, y), other[:2]) - other[2])
        out[i][2] = max(out[i][2], room * (1 - TINY))
    return out


def main() -> None:
    """Construct, relax, validate, write packing.json and print a summary line."""
    stop_at = float(os.environ.get("RATCHET_DEADLINE", "inf")) - 1
    start = [[x, y, 0] for x, y in rings()]
    circles = make_valid(relax(make_valid(start), stop_at))
    with open("packing.json", "w") as f:
        json.dump({"circles": circles}, f)
    print(f"constructed_sum_radii: {sum(r for _, _, r in circles):.6f}")


if __name__ == "__main__":
    main()
