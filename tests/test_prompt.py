"""The prompt: every part a proposer needs, within the token budget, files never cut."""

from __future__ import annotations

import pytest

from ratchet.models import Context, Experiment
from ratchet.proposers.prompt import PromptTooLarge, build_prompt, estimate_tokens

TRAIN = "LR = 0.1\nSTEPS = 100\nprint('loss: 1.0')\n"


def _exp(
    i: int, status: str, metric: float | None, description: str, reason: str = ""
) -> Experiment:
    return Experiment(
        id=i,
        tag="main",
        parent="p",
        commit="c",
        status=status,
        metric=metric,
        description=description,
        reason=reason,
    )


def _context(history: list[Experiment], **kw: object) -> Context:
    base = {
        "study_name": "toy",
        "tag": "main",
        "program": "Make the loss small. Never touch evaluate.py.",
        "files": {"train.py": TRAIN},
        "parent_commit": "abcdef1234567",
        "metric_name": "loss",
        "goal": "minimize",
        "history": history,
        "incumbent": history[1] if len(history) > 1 else None,
    }
    return Context(**{**base, **kw})  # type: ignore[arg-type]


HISTORY = [
    _exp(1, "baseline", 1.0, "baseline"),
    _exp(2, "keep", 0.8, "LR 0.1 -> 0.2"),
    _exp(3, "discard", 0.9, "STEPS 100 -> 50"),
    _exp(4, "crash", None, "huge LR", "exit code 1\nFloatingPointError: overflow"),
    _exp(5, "rejected", None, "(no proposal)", "proposal: the SEARCH block does not match"),
]


def test_every_part_is_in_the_prompt() -> None:
    ctx = _context(
        HISTORY,
        journal="- larger LR helped once\n- fewer steps hurt",
        last_failure_log="Traceback (most recent call last):\nFloatingPointError: overflow",
    )
    prompt = build_prompt(ctx, budget=10_000)
    user = prompt.user
    assert "Make the loss small. Never touch evaluate.py." in user
    assert "   1 | LR = 0.1\n   2 | STEPS = 100\n" in user
    assert "## train.py" in user and "abcdef1" in user
    assert "`loss`, lower is better" in user and "#2) has loss = 0.8" in user
    assert "| 3 | discard | 0.9 | +0.1 | STEPS 100 -> 50 |" in user
    assert "| 4 | crash | — |  | huge LR — exit code 1 / FloatingPointError: overflow |" in user
    assert "(no proposal) — proposal: the SEARCH block does not match" in user
    assert "- larger LR helped once" in user
    assert "# The last failure" in user and "FloatingPointError: overflow\n```" in user
    assert "<<<<<<< SEARCH" in prompt.system and ">>>>>>> REPLACE" in prompt.system
    assert prompt.rows_shown == 5 and prompt.rows_omitted == 0
    assert prompt.tokens <= 10_000


def test_history_is_trimmed_oldest_first_to_fit_the_budget() -> None:
    history = [_exp(1, "baseline", 1.0, "baseline")] + [
        _exp(i, "discard", 1.5, f"idea number {i} " + "x" * 60) for i in range(2, 40)
    ]
    full = build_prompt(_context(history), budget=100_000)
    budget = full.tokens - 300  # room for all but a few rows
    prompt = build_prompt(_context(history), budget=budget)
    assert prompt.tokens <= budget
    assert 0 < prompt.rows_shown < len(history)
    assert f"{prompt.rows_omitted} older ones not shown" in prompt.user
    assert "idea number 39 " in prompt.user  # the newest stays
    assert "| 1 | baseline |" not in prompt.user  # the oldest goes first
    kept = [f"idea number {i} " in prompt.user for i in range(2, 40)]
    assert kept == sorted(kept)  # a contiguous run of the newest rows


def test_files_that_do_not_fit_stop_with_a_clear_message() -> None:
    big = {"train.py": "x = 1\n" * 3000}
    with pytest.raises(PromptTooLarge) as caught:
        build_prompt(_context(HISTORY, files=big), budget=2000)
    message = str(caught.value)
    assert "train.py ~" in message and "prompt_tokens is 2,000" in message
    assert "files are never cut" in message


def test_a_long_journal_is_cut_to_half_of_the_room_and_says_so() -> None:
    journal = "\n".join(f"- lesson {i} " + "y" * 80 for i in range(200))
    prompt = build_prompt(_context(HISTORY, journal=journal), budget=4000)
    assert "- lesson 0 " in prompt.user and "- lesson 199 " not in prompt.user
    assert "(cut to fit)" in prompt.user and prompt.journal_cut
    assert prompt.tokens <= 4000


def test_the_failure_tail_is_bounded() -> None:
    log = "\n".join(f"line {i}" for i in range(5000))
    prompt = build_prompt(_context(HISTORY, last_failure_log=log), budget=50_000)
    assert "line 4999" in prompt.user and "line 4000\n" not in prompt.user


def test_token_estimate_is_pessimistic() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 2  # one token per three characters, rounded up
