"""Timing metrics: recognised by name, given a noise floor, overridden by [decision]."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_TOML, make_repo

from ratchet.decide.timing import TIMING_NOISE_FLOOR, is_timing, noise_floor
from ratchet.errors import ConfigError
from ratchet.study import DecisionSpec, load_study


@pytest.mark.parametrize(
    "name",
    ["runtime", "runtime_ms", "runtimeMs", "latency", "p99_latency_us", "step_time",
     "wall_seconds", "elapsed", "duration_s", "tokens_per_s", "time", "eval.time_ns"],
)  # fmt: skip
def test_names_of_times_are_timing(name: str) -> None:
    assert is_timing(name)


@pytest.mark.parametrize(
    "name", ["val_bpb", "mse", "loss", "accuracy", "score", "sometimes", "timeout_rate", "msg"]
)
def test_other_names_are_not(name: str) -> None:
    assert not is_timing(name)


def test_noise_floor_defaults_by_name_and_the_setting_overrides_it() -> None:
    assert noise_floor(DecisionSpec(), "runtime_ms") == TIMING_NOISE_FLOOR == 0.02
    assert noise_floor(DecisionSpec(), "val_bpb") == 0.0
    assert noise_floor(DecisionSpec(noise_floor=0.05), "val_bpb") == 0.05
    assert noise_floor(DecisionSpec(noise_floor=0.0), "runtime_ms") == 0.0


def _load(tmp_path: Path, decision: str):
    toml = FAST_TOML.replace('rule = "strict"', f'rule = "noise-aware"\n{decision}')
    files = {"program.md": "x\n", "value.txt": "score: 5\n", "check.sh": "x\n"}
    return load_study(make_repo(tmp_path / "s", {"ratchet.toml": toml, **files}))


def test_decision_section_reads_noise_floor_and_interleave(tmp_path: Path) -> None:
    study = _load(tmp_path, "noise_floor = 0.02\ninterleave = false")
    assert study.decision.noise_floor == 0.02 and study.decision.interleave is False
    assert DecisionSpec().interleave == "auto" and DecisionSpec().noise_floor is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [("interleave = \"sometimes\"", "[decision] interleave"), ("noise_floor = 2", "noise_floor")],
)
def test_bad_decision_values_are_one_sentence(tmp_path: Path, line: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, line)
    assert expected in str(info.value) and "\n" not in str(info.value)
