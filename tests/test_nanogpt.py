"""The nanogpt study: data preparation, downloads, the evaluator's checks, and a short run.

Everything runs on a CPU in a temporary RATCHET_DATA_DIR; the slow parts (a 3 s
training run, the evaluate phase as a subprocess) run once.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

STUDY = Path(__file__).resolve().parents[1] / "examples" / "nanogpt"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A prepared data cache, and RATCHET_DATA_DIR pointing at it, for the whole module."""
    path = tmp_path_factory.mktemp("nanogpt-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RATCHET_DATA_DIR", str(path))
        subprocess.run([sys.executable, "prepare.py"], cwd=STUDY, check=True, capture_output=True)
        yield path


@pytest.fixture(scope="module")
def prepare(data_dir: Path) -> ModuleType:
    """examples/nanogpt/prepare.py, imported under its own name."""
    spec = importlib.util.spec_from_file_location("nanogpt_prepare", STUDY / "prepare.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Small models, honest and not --------------------------------------------------------


class TinyLM(nn.Module):
    """One causal attention layer over byte embeddings, optionally broken in one way."""

    def __init__(self, flaw: str = "") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.flaw = flaw
        self.embed = nn.Embedding(256, 16)
        self.head = nn.Linear(16, 256)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        q = x.unsqueeze(1)
        x = x + F.scaled_dot_product_attention(q, q, q, is_causal=True).squeeze(1)
        if self.flaw == "future":  # sees the next byte: the answer
            x = x + self.embed(idx.roll(-1, dims=1))
        if self.flaw == "other_row":  # sees another sequence of the batch
            x = x + self.embed(idx.roll(1, dims=0))
        logits = self.head(x)
        if self.flaw == "nan":
            logits = logits.masked_fill(idx[..., None] == 32, float("nan"))
        if self.flaw == "short":
            logits = logits[..., :128]
        return logits


def export(prepare: ModuleType, model: nn.Module, path: Path) -> Path:
    prepare.export_model(model, path)
    return path


def test_honest_model_is_scored(prepare: ModuleType, tmp_path: Path, capsys) -> None:
    path = export(prepare, TinyLM(), tmp_path / "model.pt2")
    assert prepare.main(["evaluate", str(path)]) == 0
    value = float(re.search(r"^val_bpb: (\S+)$", capsys.readouterr().out, re.M).group(1))
    assert math.isfinite(value) and 6.0 < value < 10.0  # an untrained model: about 8 bits


def test_exported_and_in_process_scores_agree(prepare: ModuleType, tmp_path: Path) -> None:
    model = TinyLM().eval()
    batches = prepare.eval_batches(prepare.load_val_tokens())
    in_process = prepare.score(model, batches)
    exported = prepare.score(
        prepare.load_program(export(prepare, model, tmp_path / "m.pt2")), batches
    )
    assert abs(in_process - exported) < 1e-5


@pytest.mark.parametrize(
    ("flaw", "reason"),
    [("future", "causal"), ("other_row", "causal"), ("nan", "non-finite"), ("short", "shape")],
)
def test_broken_models_are_rejected(
    prepare: ModuleType, tmp_path: Path, capsys, flaw: str, reason: str
) -> None:
    path = export(prepare, TinyLM(flaw), tmp_path / "model.pt2")
    assert prepare.main(["evaluate", str(path)]) == prepare.EXIT_REJECTED
    out, err = capsys.readouterr()
    assert "val_bpb" not in out
    assert err.startswith(f"rejected: {reason}") and err.count("\n") == 1


def test_a_file_that_is_no_exported_program_is_rejected(
    prepare: ModuleType, tmp_path: Path, capsys
) -> None:
    (tmp_path / "model.pt2").write_bytes(b"not a zip archive")
    assert prepare.main(["evaluate", str(tmp_path / "model.pt2")]) == prepare.EXIT_REJECTED
    assert "not a torch.export archive" in capsys.readouterr().err


@pytest.mark.parametrize(
    "target", [torch.ops.aten.from_file.default, os.getcwd], ids=["from_file", "python"]
)
def test_graphs_calling_more_than_tensor_math_are_rejected(
    prepare: ModuleType, target: object
) -> None:
    graph = torch.fx.Graph()
    graph.placeholder("idx")
    graph.output(graph.call_function(target, ("/data/val/val.bin",)))  # type: ignore[arg-type]
    with pytest.raises(prepare.Rejected, match="operation"):
        prepare.check_operations(torch.fx.GraphModule(nn.Module(), graph))


# --- Data: the shipped corpus, pinned and idempotent; your own text ------------------------


def test_prepare_is_idempotent(prepare: ModuleType, data_dir: Path, capsys) -> None:
    files = [data_dir / "train" / "train.bin", data_dir / "val" / "val.bin"]
    before = [f.stat().st_mtime_ns for f in files]
    assert prepare.main([]) == 0
    assert capsys.readouterr().out.startswith("already prepared: shakespeare")
    assert [f.stat().st_mtime_ns for f in files] == before


def test_split_is_pinned_and_a_changed_corpus_is_detected(
    prepare: ModuleType, tmp_path: Path
) -> None:
    train, val = prepare.shakespeare_splits()
    assert len(train) > 20 * len(val) > 0
    changed = tmp_path / "shakespeare.tar.xz"
    src, dst = tarfile.open(prepare.CORPUS_ARCHIVE), tarfile.open(changed, "w:xz", preset=0)
    with src, dst:
        for member in src.getmembers():
            text = src.extractfile(member).read()
            text = (
                text.replace(b"Macbeth", b"MacBeth") if member.name == "macbeth_gut.txt" else text
            )
            dst.addfile(member, io.BytesIO(text))
    with pytest.raises(prepare.DataError, match="val split has sha256"):
        prepare.shakespeare_splits(changed)


def test_a_tampered_validation_file_is_detected(
    prepare: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(prepare.data_dir(), tmp_path / "data")
    monkeypatch.setenv("RATCHET_DATA_DIR", str(tmp_path / "data"))
    val = tmp_path / "data" / "val" / "val.bin"
    val.write_bytes(val.read_bytes()[:-1] + b"!")
    with pytest.raises(prepare.DataError, match="changed since it was prepared"):
        prepare.load_val_tokens()


def test_your_own_text_is_split_at_a_line_break(
    prepare: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATCHET_DATA_DIR", str(tmp_path / "data"))
    text = b"".join(b"line %05d of my own corpus\n" % i for i in range(2000))
    (tmp_path / "mine.txt").write_bytes(text)
    assert prepare.main(["--text", str(tmp_path / "mine.txt")]) == 0
    train = (tmp_path / "data" / "train" / "train.bin").read_bytes()
    val = (tmp_path / "data" / "val" / "val.bin").read_bytes()
    assert train + val == text and train.endswith(b"\n") and len(val) > 0.04 * len(text)
    assert prepare.load_val_tokens().numel() == len(val)


# --- Downloads over HTTP -----------------------------------------------------------------

SHARDS = {"/shard_000.txt": b"to be or not to be\n" * 200, "/shard_001.txt": b"that is\n" * 100}


class ShardHandler(BaseHTTPRequestHandler):
    """Serves SHARDS; /fail_* answers 500; /truncated_* promises more bytes than it sends."""

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1  # type: ignore[attr-defined]
        body = SHARDS.get(self.path, b"partial body")
        if self.path.startswith("/fail"):
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 1000 * self.path.startswith("/trunc")))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ShardHandler)
    httpd.hits = collections.Counter()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_shards_download_atomically_once(
    prepare: ModuleType, server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    urls = [url(server, path) for path in SHARDS]
    paths = prepare.download_shards(urls, tmp_path)
    assert [p.read_bytes() for p in paths] == list(SHARDS.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard_000.txt", "shard_001.txt"]
    prepare.download_shards(urls, tmp_path)  # present: not fetched again
    assert set(server.hits.values()) == {1}  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/fail_002.txt", "/truncated_003.txt"])
def test_a_failing_shard_is_retried_then_reported(
    prepare: ModuleType, server: ThreadingHTTPServer, tmp_path: Path, path: str
) -> None:
    with pytest.raises(prepare.DataError, match=rf"could not download .*{path} after 3 attempts"):
        prepare.download_file(url(server, path), tmp_path / "shard.txt", retries=3, backoff=0)
    assert server.hits[path] == 3  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []  # no partial file, under any name


def test_prepare_from_urls_holds_out_the_last_shard(
    prepare: ModuleType,
    server: ThreadingHTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    monkeypatch.setenv("RATCHET_DATA_DIR", str(tmp_path))
    args = [arg for path in SHARDS for arg in ("--url", url(server, path))]
    assert prepare.main(args) == 0
    assert (tmp_path / "val" / "val.bin").read_bytes() == SHARDS["/shard_001.txt"]
    assert (tmp_path / "train" / "train.bin").read_bytes() == SHARDS["/shard_000.txt"]
    assert capsys.readouterr().out.startswith("prepared: urls:shard_000.txt,shard_001.txt")


# --- The study end to end: smoke, a 3 s run, the evaluate phase ---------------------------


def test_train_then_evaluate(data_dir: Path, tmp_path: Path) -> None:
    study = tmp_path / "nanogpt"
    shutil.copytree(STUDY, study, ignore=shutil.ignore_patterns("model.pt2", "__pycache__"))

    def python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RATCHET_SEED": "1", **env}
        cmd = [sys.executable, *args]
        return subprocess.run(cmd, cwd=study, env=env, capture_output=True, text=True, timeout=120)

    smoke = python("train.py", "--smoke")
    assert smoke.returncode == 0, smoke.stderr
    assert (study / "model.pt2").exists()
    assert re.search(r"^num_steps:\s+3$", smoke.stdout, re.M)
    (study / "model.pt2").unlink()

    run = python("train.py", RATCHET_BUDGET="3", RATCHET_DEADLINE=str(time.time() + 3))
    assert run.returncode == 0, run.stderr
    progress = [line for line in run.stdout.splitlines() if line.startswith('{"progress"')]
    assert progress and all("train_loss" in line for line in progress)
    summary = dict(re.findall(r"^(\w+):\s+(\S+)$", run.stdout, re.M))
    expected = {"training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent"}
    assert expected | {"total_tokens_M", "num_steps", "num_params_M", "depth"} <= set(summary)
    assert "val_bpb" not in run.stdout  # the metric comes from the evaluate phase alone

    scored = python("prepare.py", "evaluate", "model.pt2")
    assert scored.returncode == 0, scored.stderr
    assert math.isfinite(float(re.search(r"^val_bpb: (\S+)$", scored.stdout, re.M).group(1)))
