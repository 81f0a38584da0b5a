"""``run_shinka_eval``: run a program's experiment function, validate, save the two JSON files.

Written for Ratchet from the documented contract, not from ShinkaEvolve's
code: call ``experiment_fn_name`` of the program ``num_runs`` times (with
``get_experiment_kwargs(i)``, or ``seed=i + 1`` when not given), check each
result with ``validate_fn``, turn the results into metrics with
``aggregate_metrics_fn``, and write ``metrics.json`` and ``correct.json``
(``{"correct": bool, "error": str | None}``) into ``results_dir``. Options
this shim does not implement (early stopping, plots, parallel runs) are
accepted and ignored: the result is the same, only slower or less chatty.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any


def load_program(program_path: str) -> Any:
    """Import the program at ``program_path`` as a fresh module."""
    spec = importlib.util.spec_from_file_location("program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a Python module from {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_json_results(
    results_dir: str, metrics: dict[str, Any], correct: bool, error: str | None = None
) -> None:
    """Write ``correct.json`` and ``metrics.json`` into ``results_dir``."""
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "correct.json"), "w") as f:
        json.dump({"correct": correct, "error": error}, f, indent=2)
    with open(os.path.join(results_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)


def run_shinka_eval(
    program_path: str,
    results_dir: str,
    experiment_fn_name: str,
    num_runs: int,
    get_experiment_kwargs: Callable[[int], dict[str, Any]] | None = None,
    aggregate_metrics_fn: Callable[[list[Any]], dict[str, Any]] | None = None,
    validate_fn: Callable[[Any], tuple[bool, str | None]] | None = None,
    plotting_fn: Callable[[Any], list[Any]] | None = None,
    default_metrics_on_error: dict[str, Any] | None = None,
    **_ignored: Any,
) -> tuple[dict[str, Any], bool, str | None]:
    """Run, validate and aggregate; save and return ``(metrics, correct, first_error)``."""
    results: list[Any] = []
    times: list[float] = []
    errors: list[str] = []
    try:
        experiment = getattr(load_program(program_path), experiment_fn_name)
        for i in range(num_runs):
            kwargs = get_experiment_kwargs(i) if get_experiment_kwargs else {"seed": i + 1}
            started = time.perf_counter()
            result = experiment(**kwargs)
            times.append(time.perf_counter() - started)
            if validate_fn is not None:
                ok, message = validate_fn(result)
                if not ok:
                    errors.append(message or f"run {i} is invalid")
            results.append(result)
        metrics = dict(aggregate_metrics_fn(results)) if aggregate_metrics_fn else {}
    except Exception as exc:  # the program (or the evaluator's helpers) failed: not correct
        traceback.print_exc()
        metrics = dict(default_metrics_on_error or {"combined_score": 0.0})
        save_json_results(results_dir, metrics, False, f"{type(exc).__name__}: {exc}")
        return metrics, False, f"{type(exc).__name__}: {exc}"
    metrics["execution_time_mean"] = statistics.fmean(times) if times else 0.0
    metrics["execution_time_std"] = statistics.pstdev(times) if len(times) > 1 else 0.0
    correct = not errors
    error = errors[0] if errors else None
    save_json_results(results_dir, metrics, correct, error)
    return metrics, correct, error
