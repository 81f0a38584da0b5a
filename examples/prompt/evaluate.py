"""Fixed evaluation of the prompt study: how often does the prompt make the model right?

Reads prompt.txt (the only editable file), fills its one ``{text}``
placeholder with each test sentence, and asks a language model whether the
sentence is positive or negative. Prints ``accuracy: VALUE``, the fraction
of the test sentences labelled right (higher is better).

The test set is fixed: every 10th line of data/amazon_cells_labelled.txt
(100 product-review sentences, 46 positive and 54 negative; see
data/ATTRIBUTION). The other 900 lines may serve as examples in the prompt;
a prompt that contains a test sentence is refused.

Two ways to run the model, chosen by the environment:

- Offline (the default): SmolLM2-135M-Instruct (smollm.py), one forward
  pass per sentence, batched. The prediction is the label whose first token
  is likelier as the next token after the filled prompt; each label counts
  as the sum of the probabilities of its spellings "positive", " positive",
  "Positive", " Positive" (and the same for "negative"), so the prompt may
  end with a space, a newline or a colon alike.
- Any OpenAI-compatible endpoint: set PROMPT_STUDY_BASE_URL (e.g.
  http://127.0.0.1:8080/v1) and PROMPT_STUDY_MODEL, and, when the server
  needs one, PROMPT_STUDY_API_KEY (allow it through with
  ``[run] env_allow = ["PROMPT_STUDY_API_KEY"]``: Ratchet drops *_API_KEY
  variables from every phase unless allowed). The filled prompt is sent as
  one user message at temperature 0; the first of the words "positive" and
  "negative" in the answer is the prediction (an answer with neither is wrong).

Exit status: 0 with the metric; 3 (Ratchet's `rejected`) for a prompt
without exactly one ``{text}`` or holding a test sentence; 1 when the model
cannot be loaded or reached, with the reason as the last line.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPT = Path("prompt.txt")  # in the current directory: the candidate's declared input
DATA = HERE / "data" / "amazon_cells_labelled.txt"
EVERY = 10  # every 10th line is a test sentence
PLACEHOLDER = "{text}"
LABELS = ("negative", "positive")  # the file's labels 0 and 1
BATCH = 16  # sentences per forward pass; sorted by length first, so little padding
THREADS = 1  # one thread: the same sums in the same order on every run, and no stalls when
# the machine is shared (two threads on two busy cores ran 2-5x slower than one, measured)
REJECT = 3  # the exit status Ratchet records as `rejected`


def fail(message: str, status: int = 1) -> None:
    """Stop with a one-line reason (the last line of the output) and ``status``."""
    print(f"evaluate.py: {message}", file=sys.stderr)
    sys.exit(status)


def test_set() -> list[tuple[str, int]]:
    """(sentence, label) for every EVERY-th line of the data file."""
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines()[::EVERY]:
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), int(label)))
    return rows


def read_prompt(tests: list[tuple[str, int]]) -> str:
    """The prompt template, or a refusal naming what is wrong with it."""
    try:
        prompt = PROMPT.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {PROMPT}: {exc}")
    if prompt.count(PLACEHOLDER) != 1:
        fail(f"{PROMPT} must hold {PLACEHOLDER} exactly once (it holds it"
             f" {prompt.count(PLACEHOLDER)} times)", REJECT)  # fmt: skip
    lowered = prompt.lower()
    for i, (text, _) in enumerate(tests):
        if text.lower() in lowered:
            fail(f"{PROMPT} contains test sentence {i} ({text[:60]!r}); use other lines", REJECT)
    return prompt


# --- offline: the local model ------------------------------------------------------------


def label_token_ids(tokenizer) -> list[list[int]]:
    """For each label, the first-token ids of its spellings (deduplicated)."""
    ids = []
    for word in LABELS:
        spellings = (word, f" {word}", word.capitalize(), f" {word.capitalize()}")
        ids.append(sorted({tokenizer.encode(s, add_special_tokens=False)[0] for s in spellings}))
    return ids


def shared_prefix(sequences: list[list[int]]) -> int:
    """How many leading tokens all sequences share, leaving at least one token to each."""
    shared = min(len(s) for s in sequences) - 1
    for other in sequences[1:]:
        shared = next((k for k in range(shared) if other[k] != sequences[0][k]), shared)
    return max(shared, 0)


def local_classifier() -> Callable[[list[str]], list[int]]:
    """Predict labels with SmolLM2 by comparing the labels' next-token probabilities.

    The tokens every filled prompt shares (the instructions and examples
    before ``{text}``) go through the model once; their attention keys and
    values are then reused by every sentence, so a long prompt costs little
    more than a short one. Measured on the shipped few-shot variant: the same
    log-probabilities as a full pass (difference 0.0), 2.6x faster.
    """
    import torch
    from smollm import ModelMissing, cache_dir, load

    torch.set_num_threads(THREADS)
    try:
        model, tokenizer = load()
    except ModelMissing as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. a read-only home under the bwrap sandbox
        fail(f"cannot build the model cache in {cache_dir()} ({exc}); run `python prepare.py`")
    label_ids = label_token_ids(tokenizer)

    def last_logprobs(tails: list[list[int]], prefix: object, shared: int) -> torch.Tensor:
        """Log-probabilities of the token after each tail (right-padded batch after the prefix)."""
        width = max(len(t) for t in tails)
        ids = torch.tensor([t + [tokenizer.pad_token_id] * (width - len(t)) for t in tails])
        mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in tails])
        cache = None
        if prefix is not None:
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(len(tails))
            mask = torch.cat([torch.ones(len(tails), shared, dtype=mask.dtype), mask], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, cache=cache).logits
        last = torch.tensor([len(t) - 1 for t in tails])
        return logits[torch.arange(len(tails)), last].log_softmax(dim=-1)

    def classify(prompts: list[str]) -> list[int]:
        sequences = [tokenizer(p)["input_ids"] for p in prompts]
        shared = shared_prefix(sequences)
        order = sorted(range(len(prompts)), key=lambda i: len(sequences[i]))  # less padding
        found = [0] * len(prompts)
        with torch.inference_mode():
            head = torch.tensor([sequences[0][:shared]])
            prefix = model(input_ids=head, use_cache=True).cache if shared else None
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                logprobs = last_logprobs([sequences[i][shared:] for i in chunk], prefix, shared)
                scores = [logprobs[:, ids].logsumexp(dim=-1) for ids in label_ids]
                for row, i in enumerate(chunk):
                    found[i] = int(scores[1][row] > scores[0][row])
        return found

    return classify


# --- or any OpenAI-compatible endpoint ----------------------------------------------------


def endpoint_classifier(base_url: str) -> Callable[[list[str]], list[int]]:
    """Predict labels by asking a chat endpoint; the first label word in the answer decides."""
    from openai import OpenAI, OpenAIError

    model = os.environ.get("PROMPT_STUDY_MODEL")
    if not model:
        fail("PROMPT_STUDY_BASE_URL is set but PROMPT_STUDY_MODEL is not; set the model name")
    key = os.environ.get("PROMPT_STUDY_API_KEY") or "none"
    client = OpenAI(base_url=base_url, api_key=key, timeout=20, max_retries=1)

    def ask(prompt: str) -> int:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=5,
        )
        words = [w.strip(".,:;!*\"'") for w in (reply.choices[0].message.content or "").split()]
        said = [w.lower() for w in words if w.lower() in LABELS]
        return LABELS.index(said[0]) if said else -1  # no label at all: wrong either way

    def classify(prompts: list[str]) -> list[int]:
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                return list(pool.map(ask, prompts))
        except OpenAIError as exc:
            fail(f"the endpoint {base_url} failed: {type(exc).__name__}: {str(exc)[:200]}")

    return classify


def main() -> None:
    """Score prompt.txt on the test set and print the accuracy."""
    tests = test_set()
    prompt = read_prompt(tests)
    base_url = os.environ.get("PROMPT_STUDY_BASE_URL")
    started = time.perf_counter()
    classify = endpoint_classifier(base_url) if base_url else local_classifier()
    loaded = time.perf_counter()
    print(f"load_seconds: {loaded - started:.2f}", flush=True)
    predictions = classify([prompt.replace(PLACEHOLDER, text) for text, _ in tests])
    print(f"score_seconds: {time.perf_counter() - loaded:.2f}")
    right = sum(p == label for p, (_, label) in zip(predictions, tests, strict=True))
    print(f"positive_rate: {predictions.count(1) / len(tests):.4f}")
    print(f"accuracy: {right / len(tests):.4f}")


if __name__ == "__main__":
    main()
