"""Fixed evaluation of the sort study: is ``sort`` right, and how fast is it per element?

It never imports sort.py. ``load_candidate`` runs the candidate's ``sort`` in
a separate sandboxed Python process; every list crosses as JSON.

1. Correctness: ``sort`` must return exactly ``sorted(values)`` for every
   input of ``correctness_inputs()`` (edge cases, then small random lists),
   checked smallest first. The first wrong answer (or exception) refuses the
   candidate with exit status 3, which Ratchet records as `rejected`, and a
   last line holding the counterexample.
2. Speed: each input of ``timing_inputs()`` (sizes 100, 1000 and 10000, five
   shapes each) is sorted REPEATS times; the fastest of the repeats counts.
   The metric, reported on the harness's private channel, is
   ``ns_per_element``: the sum of those times over the sum of the sizes, in
   nanoseconds (lower is better). The time is measured around the call, so it
   includes the JSON transfer of the list, which is the same for every
   candidate. Each timed answer is checked too.

The inputs are generated here, from fixed seeds, at every evaluation; the
candidate never sees them beforehand. A call running past CALL_TIMEOUT is a
crash (exit status 1).
"""

import random
import sys
import time

from ratchet.evaluation import CandidateError, CandidateTimeout, load_candidate, report

CANDIDATE = "sort.py"
CALL_TIMEOUT = 5.0  # seconds per call: far above what a sane sort of 10000 ints takes
SIZES = (100, 1000, 10_000)
REPEATS = 5  # the fastest of five: a call slowed by other work on the machine does not count
REJECT = 3  # the exit status Ratchet records as `rejected`


def correctness_inputs() -> list[list[int]]:
    """Edge cases, then 300 small random lists of many shapes, all from a fixed seed."""
    cases = [[], [0], [1, 0], [2, 2], [3, 1, 2], [-1, -3, 2, 0], [5, 4, 3, 2, 1, 0]]
    cases += [[2**70, -(2**70), 0], [7] * 9, [1, 0] * 6, list(range(20, -1, -1))]
    rng = random.Random(20260101)
    for _ in range(300):
        n = rng.randint(0, 40)
        span = rng.choice([1, 3, 10, 1000, 10**12])
        cases.append([rng.randint(-span, span) for _ in range(n)])
    return sorted(cases, key=len)


def timing_inputs() -> list[tuple[str, list[int]]]:
    """Five shapes at each size, from a fixed seed: (label, values)."""
    rng = random.Random(20260102)
    found = []
    for n in SIZES:
        uniform = [rng.randint(-(10**9), 10**9) for _ in range(n)]
        nearly = sorted(uniform)
        for _ in range(n // 20):
            i, j = rng.randrange(n), rng.randrange(n)
            nearly[i], nearly[j] = nearly[j], nearly[i]
        found += [
            (f"random-{n}", uniform),
            (f"sorted-{n}", sorted(uniform)),
            (f"reversed-{n}", sorted(uniform, reverse=True)),
            (f"few-distinct-{n}", [rng.randint(0, 9) for _ in range(n)]),
            (f"nearly-sorted-{n}", nearly),
        ]
    return found


def short(values: object, limit: int = 120) -> str:
    """A printable value, cut to ``limit`` characters."""
    text = repr(values)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refuse(message: str, status: int = REJECT) -> None:
    """Stop with a one-line reason as the last line of the output."""
    print(f"evaluate.py: {message}", file=sys.stderr)
    sys.exit(status)


def call_sort(candidate, values: list[int]) -> object:
    """The candidate's answer; an exception in it refuses the candidate with the input."""
    try:
        return candidate.sort(values)
    except CandidateTimeout as exc:
        refuse(f"sort on {len(values)} values: {exc}", status=1)
    except CandidateError as exc:
        refuse(f"wrong: sort({short(values)}) raised {exc}")


def check(candidate) -> None:
    """Refuse the candidate at its first wrong answer."""
    for values in correctness_inputs():
        answer = call_sort(candidate, list(values))
        if answer != sorted(values):
            refuse(f"wrong: sort({short(values)}) returned {short(answer)}")


def time_per_element(candidate) -> float:
    """Nanoseconds per element over the timing inputs, fastest repeat of each."""
    total_s, total_n = 0.0, 0
    for label, values in timing_inputs():
        expected, best = sorted(values), float("inf")
        for _ in range(REPEATS):
            started = time.perf_counter()
            answer = call_sort(candidate, values)
            best = min(best, time.perf_counter() - started)
            if answer != expected:
                refuse(f"wrong on the {label} input: sort returned {short(answer)}")
        total_s, total_n = total_s + best, total_n + len(values)
    return total_s / total_n * 1e9


def main() -> None:
    try:
        candidate = load_candidate(CANDIDATE, timeout=CALL_TIMEOUT)
    except CandidateError as exc:
        refuse(f"sort.py does not load: {exc}", status=1)
    with candidate:
        check(candidate)
        report(ns_per_element=time_per_element(candidate))


if __name__ == "__main__":
    main()
