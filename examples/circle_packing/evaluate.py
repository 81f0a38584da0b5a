"""Fixed evaluation of the circle_packing study: is the packing valid, and how large is it?

Reads packing.json, written by initial_program.py in the run phase, as
{"circles": [[x, y, r], ...]} and prints `sum_radii: VALUE`. It never imports
the candidate's code: it sees only that file.

A packing is valid when it has exactly N = 26 circles with finite
coordinates and non-negative radii, every circle lies inside the unit square
(x - r >= -TOL, x + r <= 1 + TOL, the same for y) and no two overlap
(distance between centres >= r_i + r_j - TOL), with TOL = 1e-9, an absolute
tolerance for floating-point rounding only. An invalid packing is refused
with exit status 3 (Ratchet records the candidate as `rejected`) and a last
line that names the offending circle(s), 0-based, in file order. A missing
or unreadable packing.json exits with status 1 (the run phase crashed).
"""

import json
import math
import sys

PATH = "packing.json"
N = 26
TOL = 1e-9
REJECT = 3  # the exit status Ratchet records as `rejected`


def fail(message: str, status: int = 1) -> None:
    """Stop with a one-line message (the last line of the output) and ``status``."""
    print(f"evaluate.py: {message}", file=sys.stderr)
    sys.exit(status)


def load(path: str) -> list:
    """The raw circle list, or exit 1 when the file is missing or not JSON of the right shape."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        fail(f"{path} not found - the program must write it in the current directory")
    except (OSError, ValueError) as exc:
        fail(f"{path} is not readable JSON ({exc})")
    circles = data.get("circles") if isinstance(data, dict) else None
    if not isinstance(circles, list):
        fail(f'{path} needs {{"circles": [[x, y, r], ...]}}')
    return circles


def problems(circles: list) -> list[str]:
    """Every reason the packing is invalid, most basic first; empty when it is valid."""
    if len(circles) != N:
        return [f"the packing has {len(circles)} circles; it needs exactly {N}"]
    for i, c in enumerate(circles):
        if not (isinstance(c, list) and len(c) == 3 and all(_finite(v) for v in c)):
            return [f"circle {i} is {c!r}; each circle must be [x, y, r] with finite numbers"]
        if c[2] < 0:
            return [f"circle {i} has a negative radius {c[2]!r}"]
    found = [text for i, c in enumerate(circles) if (text := _outside(i, *c))]
    for i in range(N):
        for j in range(i + 1, N):
            overlap = circles[i][2] + circles[j][2] - math.dist(circles[i][:2], circles[j][:2])
            if overlap > TOL:
                found.append(f"circles {i} and {j} overlap by {overlap:.3g}")
    return found


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _outside(i: int, x: float, y: float, r: float) -> str:
    """Why circle ``i`` leaves the unit square, or "" when it does not."""
    worst = max(r - x, x + r - 1, r - y, y + r - 1)
    return f"circle {i} leaves the unit square by {worst:.3g}" if worst > TOL else ""


def main() -> None:
    """Validate packing.json; print the metric, or refuse the packing naming the culprit."""
    circles = load(PATH)
    found = problems(circles)
    if found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        fail(f"invalid packing: {found[0]}{more}", REJECT)
    print(f"sum_radii: {sum(c[2] for c in circles):.9f}")


if __name__ == "__main__":
    main()
