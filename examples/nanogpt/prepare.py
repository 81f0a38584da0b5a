"""Data, constants and the evaluator of the nanogpt study. Protected: the proposer never edits it.

The study is karpathy/autoresearch's setting made to run on a laptop CPU: a
small byte-level GPT trained for a fixed wall-clock budget, judged by one
number, validation bits per byte (``val_bpb``). Tokens are bytes
(``VOCAB_SIZE = 256``), so bits per byte are exact: no tokenizer can move the
metric.

Usage::

    python prepare.py                      # the shipped Shakespeare corpus (idempotent)
    python prepare.py --text FILE          # your own UTF-8 text, last 5 % held out
    python prepare.py --url U1 --url U2    # text shards over HTTP, the last one held out
    python prepare.py --corpus tinystories # a larger preset corpus (a 2.2 GB download)
    python prepare.py evaluate model.pt2   # the evaluate phase: reports val_bpb (by hand:
                                           # prints `val_bpb: VALUE`)

Data live outside the study directory (Ratchet wipes untracked files from its
worktrees), in ``$RATCHET_DATA_DIR`` or ``~/.cache/ratchet/nanogpt``::

    <cache>/train/train.bin    training bytes: the only data the run phase sees
    <cache>/val/val.bin        validation bytes: read by the evaluate phase alone
    <cache>/manifest.json      corpus name and the sha256 of both splits
    <cache>/downloads/         shards fetched by --url / --corpus

The evaluate phase runs sealed (a fresh directory with this file, data/ and
the declared input model.pt2; never the candidate's worktree). It loads a
``torch.export`` program (never train.py), checks that it only uses plain
tensor operations, probes it for causality, computes the cross-entropy
itself from the logits, and reports the metric with
``ratchet.evaluation.report``, so nothing printed while the candidate's
program runs can stand in for it. Exit codes: 0 scored,
1 error (missing data or file, changed corpus), 3 model rejected; a rejection
prints one line starting with ``rejected:`` naming the reason (``causal``,
``shape``, ``non-finite``, ``operation``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import math
import operator
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train.py: before torch's threads start

import torch  # noqa: E402
import torch._dynamo  # noqa: E402, F401  torch.export needs it: import it now, not mid-export
import torch.nn.functional as F  # noqa: E402

# --- Constants (fixed: they define the metric) --------------------------------------------

VOCAB_SIZE = 256  # byte-level: one token per byte, so bits per token are bits per byte
MAX_SEQ_LEN = 128  # context the evaluator feeds the model (bytes); sized for a CPU
EVAL_BATCH_SIZE = 32  # sequences per forward pass of the exported program
EVAL_TOKENS = 8 * EVAL_BATCH_SIZE * MAX_SEQ_LEN  # 32768 scored bytes, spread over the val split
TIME_BUDGET = 60  # seconds of run phase when RATCHET_BUDGET is unset (a CPU demo)

CORPUS_ARCHIVE = Path(__file__).resolve().parent / "data" / "shakespeare.tar.xz"
VAL_FILES = ("macbeth_gut.txt", "twelfth_night_gut.txt")  # a tragedy and a comedy, held out
SEPARATOR = b"\n\n\n"  # between works when the archive is flattened into one byte stream
TRAIN_SHA256 = "bcff0684934273efb8ede1b13fc65da0155af2e810f63cd41833270c1be8c770"
VAL_SHA256 = "b09ad47c627d896c4d85290c93b7a5e8691a98baebb9d9fcc608009f89f5ecaa"
TEXT_VAL_FRACTION = 0.05  # held out at the end of a --text corpus

CORPORA = {  # larger corpora: shard URLs, the last one is the validation shard
    "tinystories": [
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
    ],
}
DOWNLOAD_RETRIES = 5
EXIT_ERROR, EXIT_REJECTED = 1, 3
ALLOWED_NAMESPACES = {"aten", "prims", "higher_order"}
FORBIDDEN_OPS = ("from_file",)  # aten ops that read files: a model could read val.bin
CAUSAL_TOLERANCE = 1e-4  # logits may move this much (relative to their scale) under the probe


class DataError(Exception):
    """Data missing, changed, or not downloadable; the message names the fix."""


class Rejected(Exception):
    """The exported model breaks a rule of the evaluation; the message names which."""


# --- Paths --------------------------------------------------------------------------------


def data_dir() -> Path:
    """The data cache: $RATCHET_DATA_DIR, else ~/.cache/ratchet/nanogpt."""
    env = os.environ.get("RATCHET_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ratchet" / "nanogpt"


def train_path() -> Path:
    """The training split: the one data file the run phase is told about."""
    return data_dir() / "train" / "train.bin"


def _val_path() -> Path:
    return data_dir() / "val" / "val.bin"


def _manifest_path() -> Path:
    return data_dir() / "manifest.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- Data preparation ---------------------------------------------------------------------


def shakespeare_splits(archive: Path = CORPUS_ARCHIVE) -> tuple[bytes, bytes]:
    """(train, val) bytes of the shipped corpus, checked against the pinned hashes."""
    train, val = [], []
    with tarfile.open(archive, "r:xz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            text = tar.extractfile(member).read()  # type: ignore[union-attr]
            (val if member.name in VAL_FILES else train).append(text)
    splits = SEPARATOR.join(train), SEPARATOR.join(val)
    for name, data, pinned in zip(
        ("train", "val"), splits, (TRAIN_SHA256, VAL_SHA256), strict=True
    ):
        if _sha256(data) != pinned:
            raise DataError(
                f"corpus {archive} changed: its {name} split has sha256 {_sha256(data)}, "
                f"pinned {pinned}; restore the file from git (`git checkout -- {archive.name}`)"
            )
    return splits


def text_splits(text: bytes, val_fraction: float = TEXT_VAL_FRACTION) -> tuple[bytes, bytes]:
    """(train, val) of one text: the last ``val_fraction``, starting at a line break."""
    cut = int(len(text) * (1 - val_fraction))
    newline = text.rfind(b"\n", 0, cut)
    cut = newline + 1 if newline > cut // 2 else cut
    return text[:cut], text[cut:]


def prepare(corpus: str, train: bytes, val: bytes) -> bool:
    """Write the splits to the cache unless already there; True when something was written."""
    manifest = {
        "corpus": corpus,
        "train_sha256": _sha256(train),
        "val_sha256": _sha256(val),
        "train_bytes": len(train),
        "val_bytes": len(val),
    }
    if _read_manifest() == manifest and _cache_matches(manifest):
        return False
    if len(val) < MAX_SEQ_LEN + 1 or len(train) < MAX_SEQ_LEN + 1:
        raise DataError(f"corpus {corpus} is too small: each split needs > {MAX_SEQ_LEN} bytes")
    _write_atomic(train_path(), train)
    _write_atomic(_val_path(), val)
    _write_atomic(_manifest_path(), (json.dumps(manifest, indent=2) + "\n").encode())
    return True


def _read_manifest() -> dict | None:
    try:
        return json.loads(_manifest_path().read_text())
    except (OSError, ValueError):
        return None


def _cache_matches(manifest: dict) -> bool:
    try:
        return (
            _sha256(train_path().read_bytes()) == manifest["train_sha256"]
            and _sha256(_val_path().read_bytes()) == manifest["val_sha256"]
        )
    except OSError:
        return False


# --- Download (larger corpora) ------------------------------------------------------------


def download_file(
    url: str,
    dest: Path,
    *,
    retries: int = DOWNLOAD_RETRIES,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``: skip if present, retry with backoff, rename atomically.

    Bytes go to a temporary file next to ``dest`` that becomes ``dest`` only when
    the whole body (Content-Length, when sent) has arrived, so an interrupted or
    failed download never leaves a partial file under the final name.
    """
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part{os.getpid()}")
    error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
                expected = response.headers.get("Content-Length")
            if expected is not None and tmp.stat().st_size != int(expected):
                raise OSError(f"got {tmp.stat().st_size} of {expected} bytes")
            os.replace(tmp, dest)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an HTTP error carries the open response
            error = exc
            tmp.unlink(missing_ok=True)
            if attempt < retries:
                time.sleep(backoff * 2 ** (attempt - 1))
    raise DataError(f"could not download {url} after {retries} attempts: {error}")


def shard_name(url: str) -> str:
    """The file name a shard is stored under: the last segment of the URL's path."""
    return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name


def download_shards(
    urls: Sequence[str], dest_dir: Path, *, workers: int = 4, **kwargs: float
) -> list[Path]:
    """Download every shard (in parallel threads) into ``dest_dir``; their paths in order."""
    names = [shard_name(url) for url in urls]
    if "" in names or len(set(names)) != len(names):
        raise DataError("shard URLs must end in distinct file names")
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [
            pool.submit(download_file, url, dest_dir / name, **kwargs)
            for url, name in zip(urls, names, strict=True)
        ]
        return [job.result() for job in jobs]


# --- For train.py: data, export, hardware -------------------------------------------------


def load_train_tokens() -> torch.Tensor:
    """The training split as a uint8 tensor of byte tokens."""
    path = train_path()
    if not path.exists():
        raise DataError(f"no training data at {path}: run `python prepare.py` once first")
    size = path.stat().st_size  # mapped, not read: a large corpus costs no extra copy
    return torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)


def export_model(model: torch.nn.Module, path: str | os.PathLike[str] = "model.pt2") -> None:
    """Save ``model`` as a torch.export program over int64 (EVAL_BATCH_SIZE, MAX_SEQ_LEN)
    tokens, on the device of its parameters, in eval mode, float32 (no autocast)."""
    device = next(model.parameters()).device
    example = torch.zeros(EVAL_BATCH_SIZE, MAX_SEQ_LEN, dtype=torch.long, device=device)
    model.eval()
    with torch.no_grad():
        program = torch.export.export(model, (example,))
    torch.export.save(program, path)


PEAK_FLOPS = [  # (name fragment, dense FLOP/s at the precision train.py trains in there)
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
    ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12),
    ("RTX 4090", 165e12), ("RTX 4080", 97e12), ("RTX 3090", 71e12), ("RTX 3080", 59e12),
    ("V100", 125e12), ("T4", 65e12),
    # Apple GPUs through MPS, float32
    ("M1 Ultra", 21e12), ("M1 Max", 10.4e12), ("M1 Pro", 5.2e12), ("M1", 2.6e12),
    ("M2 Ultra", 27.2e12), ("M2 Max", 13.6e12), ("M2 Pro", 6.8e12), ("M2", 3.6e12),
    ("M3 Max", 16.4e12), ("M3 Pro", 7.4e12), ("M3", 4.1e12),
    ("M4 Max", 18.4e12), ("M4 Pro", 9.2e12), ("M4", 4.3e12),
]  # fmt: skip


def device_name(device: str) -> str:
    """A human name for the device, used to look up its peak FLOP/s."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    if device == "mps":
        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return "Apple"
    return f"CPU {platform.processor() or platform.machine()}"


def peak_flops(device: str) -> float:
    """Peak FLOP/s of ``device`` from the table, or for a CPU an estimate:
    threads x clock x FLOPs per cycle (32 for AVX2+FMA, 64 for AVX-512, 32 for arm64)."""
    name = device_name(device)
    if not device.startswith("cpu"):
        return next((flops for key, flops in PEAK_FLOPS if key in name), float("nan"))
    ghz, per_cycle = 3.0, 32 if platform.machine() in ("arm64", "aarch64") else 16
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        if match := re.search(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo):
            ghz = float(match.group(1)) / 1000
        flags = set(re.findall(r"\b(avx512f|avx2|fma)\b", cpuinfo))
        per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else per_cycle
    except OSError:
        pass
    return torch.get_num_threads() * ghz * 1e9 * per_cycle


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process on ``device`` in MiB: allocated GPU memory on CUDA,
    the driver's current allocation on MPS, the peak resident set on a CPU (0 on Windows)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    if device == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    if sys.platform == "win32":
        return 0.0
    import resource  # Unix only

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


# --- Evaluation ---------------------------------------------------------------------------


def load_val_tokens() -> torch.Tensor:
    """The validation split (uint8), after checking it against the manifest and the pins."""
    manifest, path = _read_manifest(), _val_path()
    if manifest is None or not path.exists():
        raise DataError(f"no validation data at {path}: run `python prepare.py` once first")
    data = path.read_bytes()
    pinned = VAL_SHA256 if manifest["corpus"] == "shakespeare" else manifest["val_sha256"]
    if _sha256(data) != pinned:
        raise DataError(f"{path} changed since it was prepared: run `python prepare.py` again")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def eval_batches(tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """EVAL_TOKENS // (EVAL_BATCH_SIZE * MAX_SEQ_LEN) batches of (inputs, targets), int64,
    from windows spread evenly over the whole split (the same windows every time)."""
    n_windows, span = EVAL_TOKENS // MAX_SEQ_LEN, len(tokens) - MAX_SEQ_LEN - 1
    starts = torch.linspace(0, span, n_windows).long()
    windows = tokens[starts[:, None] + torch.arange(MAX_SEQ_LEN + 1)].long()
    x, y = windows[:, :-1], windows[:, 1:]
    return list(zip(x.split(EVAL_BATCH_SIZE), y.split(EVAL_BATCH_SIZE), strict=True))


def load_program(path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load an exported program without running any pickled code, and check its operations."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise Rejected(f"{path} is not a torch.export archive ({exc})") from exc
    if any(re.search(r"/constants/(custom_obj|opaque_obj)_", name) for name in names):
        raise Rejected("operation: the program carries pickled objects; export plain tensors")
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # torch.load may not unpickle code
    try:
        program = torch.export.load(path)
    except Exception as exc:  # any failure to deserialize is the candidate's
        raise Rejected(f"{path} could not be loaded as a torch.export program ({exc})") from exc
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
    check_operations(program.graph_module)
    return program.module()


def check_operations(graph_module: torch.nn.Module) -> None:
    """Reject graphs that call anything but tensor operators (aten, prims, higher-order)."""
    for module in graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            if node.op in ("placeholder", "output", "get_attr") or node.target is operator.getitem:
                continue
            name, namespace = str(node.target), getattr(node.target, "namespace", None)
            plain = node.op == "call_function" and namespace in ALLOWED_NAMESPACES
            if not plain or any(forbidden in name for forbidden in FORBIDDEN_OPS):
                raise Rejected(f"operation: the program calls {name}, which is not allowed")


def run_model(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits for ``x`` as float32, after checking their type, shape and finiteness."""
    with torch.no_grad():
        try:
            logits = model(x)
        except Exception as exc:  # a program that cannot run on the fixed input shape
            raise Rejected(f"shape: the model failed on input {tuple(x.shape)} ({exc})") from exc
    if isinstance(logits, (tuple, list)) and len(logits) == 1:
        logits = logits[0]
    expected = (*x.shape, VOCAB_SIZE)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise Rejected(f"shape: logits must have shape {expected}, got {got}")
    if not logits.is_floating_point():
        raise Rejected(f"shape: logits must be floating point, got {logits.dtype}")
    logits = logits.float()
    if not torch.isfinite(logits).all():
        raise Rejected("non-finite: the model produced NaN or infinite logits")
    return logits


def check_causal(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """Reject a model whose logits at position t depend on tokens after t (or on other rows).

    One extra forward pass: every row b of the probe keeps the prefix of row b-1 up to
    its own cut t_b and gets the suffix of row b-2 after it; the logits up to t_b must
    equal those row b-1 had. Cuts cover the first and last positions; the replaced
    text is real validation text, so a model cannot tell the probe from scoring.
    """
    batch, seq = x.shape
    generator = torch.Generator().manual_seed(1234)
    cuts = torch.randint(0, seq - 1, (batch,), generator=generator)
    cuts[0], cuts[-1] = 0, seq - 2
    reference = run_model(model, x).roll(1, dims=0)
    prefix_rows, suffix_rows = x.roll(1, dims=0), x.roll(2, dims=0)
    keep = torch.arange(seq, device=x.device)[None, :] <= cuts.to(x.device)[:, None]
    probe = run_model(model, torch.where(keep, prefix_rows, suffix_rows))
    scale = max(1.0, reference.abs().max().item())
    diff = ((probe - reference).abs() * keep[..., None]).amax(dim=(1, 2))
    if (diff > CAUSAL_TOLERANCE * scale).any():
        row = int(diff.argmax())
        raise Rejected(
            f"causal: logits at positions <= {int(cuts[row])} changed by {diff[row].item():.3g} "
            "when only later tokens (or other rows) changed; the model must not see the future"
        )


def score(
    model: Callable[[torch.Tensor], torch.Tensor],
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """Bits per byte: mean cross-entropy of the targets under the logits, in bits."""
    nats, count = 0.0, 0
    for x, y in batches:
        logprobs = F.log_softmax(run_model(model, x), dim=-1)
        nats -= logprobs.gather(-1, y[..., None]).double().sum().item()
        count += y.numel()
    return nats / count / math.log(2)


def evaluate(path: str | os.PathLike[str], device: str | None = None) -> float:
    """The evaluate phase: load, check, probe for causality, score. Raises Rejected/DataError."""
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # denormal floats would make CPU scoring several times slower
    model = load_program(path)
    device = device or _program_device(model)
    batches = [(x.to(device), y.to(device)) for x, y in eval_batches(load_val_tokens())]
    check_causal(model, batches[0][0])
    return score(model, batches)


def _program_device(model: torch.nn.Module) -> str:
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError("the model was exported on CUDA but no GPU is available here")
    return str(device)


# --- Command line -------------------------------------------------------------------------


def _prepare_command(args: argparse.Namespace) -> str:
    if args.text:
        name, (train, val) = f"text:{Path(args.text).name}", text_splits(args.text.read_bytes())
    elif args.url or args.corpus:
        urls = args.url or CORPORA[args.corpus]
        name = args.corpus or "urls:" + ",".join(shard_name(u) for u in urls)
        if len(urls) < 2:
            raise DataError("give at least two shards: the last one is the validation shard")
        shards = download_shards(urls, data_dir() / "downloads")
        train = SEPARATOR.join(p.read_bytes() for p in shards[:-1])
        val = shards[-1].read_bytes()
    else:
        name, (train, val) = "shakespeare", shakespeare_splits()
    wrote = prepare(name, train, val)
    state = "prepared" if wrote else "already prepared"
    return f"{state}: {name}, train {len(train):,} bytes, val {len(val):,} bytes in {data_dir()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", type=Path, help="prepare your own UTF-8 text file instead")
    source.add_argument("--url", action="append", help="a text shard URL (repeat; last = val)")
    source.add_argument(
        "--corpus", choices=sorted(CORPORA), help="download a preset corpus (tinystories: 2.2 GB)"
    )
    commands = parser.add_subparsers(dest="command")
    evaluate_parser = commands.add_parser("evaluate", help="score an exported model")
    evaluate_parser.add_argument("model", type=Path, help="model.pt2 written by export_model")
    args = parser.parse_args(argv)
    try:
        if args.command != "evaluate":
            print(_prepare_command(args))
            return 0
        if not args.model.exists():
            raise DataError(f"no model at {args.model}: the run phase must call export_model")
        from ratchet.evaluation import report  # the metric on Ratchet's private channel

        started = time.time()
        bpb = evaluate(args.model)
        report(val_bpb=bpb, eval_tokens=EVAL_TOKENS, eval_seconds=time.time() - started)
        return 0
    except Rejected as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
