"""The experiment's environment: secrets scrubbed, Ratchet's variables set."""

from __future__ import annotations

import pytest

from ratchet.execute import SECRET_PATTERNS, experiment_env, scrub


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "anthropic_api_key",
        "GITHUB_TOKEN",
        "hf_token",
        "AWS_SECRET_ACCESS_KEY",
        "client_secret",
        "DB_PASSWORD",
        "password_file",
    ],
)
def test_secret_names_are_scrubbed_in_any_case(name: str) -> None:
    assert scrub({name: "x", "PATH": "/bin"}) == {"PATH": "/bin"}


@pytest.mark.parametrize("name", ["PATH", "HOME", "TOKENIZERS_PARALLELISM", "API_KEYS_DIR"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert scrub({name: "v"}) == {name: "v"}


def test_allowlist_keeps_named_secrets_case_insensitively() -> None:
    environ = {"WANDB_API_KEY": "w", "HF_TOKEN": "h", "OPENAI_API_KEY": "o"}
    assert scrub(environ, allow=["wandb_api_key", "HF_*"]) == {
        "WANDB_API_KEY": "w",
        "HF_TOKEN": "h",
    }


def test_patterns_are_the_documented_ones() -> None:
    assert SECRET_PATTERNS == ("*_API_KEY", "*_TOKEN", "*SECRET*", "*PASSWORD*")


def test_experiment_env_sets_ratchet_variables() -> None:
    environ = {"PATH": "/bin", "MY_TOKEN": "t"}
    env = experiment_env(environ, seed=3, budget=10.0, deadline=1700000000.25)
    assert env == {
        "PATH": "/bin",
        "PYTHONUNBUFFERED": "1",
        "RATCHET_SEED": "3",
        "RATCHET_BUDGET": "10",
        "RATCHET_DEADLINE": "1700000000.25",
    }
    assert environ == {"PATH": "/bin", "MY_TOKEN": "t"}  # the input is not changed


def test_experiment_env_fractional_budget_allow_and_extra() -> None:
    env = experiment_env(
        {"HF_TOKEN": "h"},
        allow=["HF_TOKEN"],
        seed=0,
        budget=2.5,
        deadline=1.0,
        extra={"CUDA_VISIBLE_DEVICES": "0", "RATCHET_SEED": "9"},
    )
    assert env["RATCHET_BUDGET"] == "2.5" and env["HF_TOKEN"] == "h"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["RATCHET_SEED"] == "9"
