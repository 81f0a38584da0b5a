"""Train a small byte-level GPT for a fixed wall-clock budget, then export it.

This file is the canvas of the nanogpt study: change anything in it (model,
optimizer, batch size, schedule) to get a lower val_bpb within the budget.
The metric is not computed here: `python prepare.py evaluate model.pt2`
scores the exported model on data this file never sees.

    python train.py            # train until the budget is spent, write model.pt2
    python train.py --smoke    # a few steps, then export: a cheap pre-check
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

# Before torch starts its OpenMP threads: waiting threads sleep instead of spinning. That costs
# ~25 % throughput on an idle CPU, but spinning threads slow down 10x or more as soon as
# other processes compete for the cores, and a noisy clock makes a noisy metric.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from prepare import (  # noqa: E402
    MAX_SEQ_LEN,
    TIME_BUDGET,
    VOCAB_SIZE,
    device_name,
    export_model,
    load_train_tokens,
    peak_flops,
    peak_memory_mb,
)

T_START = time.time()

# --- Hyperparameters ----------------------------------------------------------------------
# Sized by measurement (benchmarks/nanogpt_cpu.py) for a 60 s budget on 2 CPU cores: in so
# short a run a small model that takes many steps beats a large one that takes few. On a
# GPU with a 300 s budget, scale DEPTH, N_HEADS and BATCH_SIZE up together. The offline
# mutator (proposer "mutate") leaves the numbers on lines marked `ratchet: fixed` alone.

DEPTH = 1  # transformer blocks: at 60 s on a CPU one block beats two (~1.6x the steps)
N_HEADS = 3  # attention heads; width 96 measured best at 60 s (64 and 128 both lose)
HEAD_DIM = 32  # per head (even: RoPE rotates pairs)
WIDTH = N_HEADS * HEAD_DIM  # model dimension; the cost of a step grows as WIDTH^2
MLP_RATIO = 2.75  # SwiGLU hidden = ratio x WIDTH; ~8/3 costs what a 4x GELU MLP costs
BIGRAM_BUCKETS = 8192  # hashed (previous byte, byte) pairs get their own embedding
ROPE_BASE = 10000.0  # rotary frequencies; contexts here are short, the default is fine
SEQ_LEN = MAX_SEQ_LEN  # train on the context the evaluator uses: RoPE does not extrapolate
BATCH_SIZE = 8  # sequences per step: in a short budget more updates beat bigger ones
LEARNING_RATE = 1e-2  # AdamW peak; measured best here (1.4e-2 and 6e-3 both worse)
EMBED_LR_SCALE = 1.0  # multiplier on the embeddings' rate
WEIGHT_DECAY = 0.1  # on matrices only, not on the embeddings
BETAS = (0.9, 0.95)  # a shorter second-moment memory adapts faster in short runs
GRAD_CLIP = 1.0  # clip the global gradient norm: cheap insurance against spikes
WARMUP_FRAC = 0.03  # fraction of the training time spent ramping the rate up
WARMDOWN_FRAC = 0.4  # final fraction spent decaying it linearly to zero
EXPORT_RESERVE_S = 5.0  # seconds kept back for export_model (~2 s on a laptop)  ratchet: fixed
PROGRESS_LINES = 40  # JSON progress lines per run, for the pruner  ratchet: fixed
SMOKE_STEPS = 3  # steps taken by --smoke  ratchet: fixed
DEVICE = os.environ.get("RATCHET_DEVICE", "auto")  # auto | cpu | cuda | mps
COMPILE = True  # torch.compile on CUDA, where it pays back; on CPU/MPS it would eat the budget

# --- Model --------------------------------------------------------------------------------


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without a learned scale."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = ROPE_BASE ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len).float(), freqs)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH, bias=False)  # ratchet: fixed
        self.proj = nn.Linear(WIDTH, WIDTH, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, N_HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
        q, k = rotate(norm(q), cos, sin), rotate(norm(k), cos, sin)  # QK-norm, then RoPE
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        hidden = int(MLP_RATIO * WIDTH)
        self.gate_up = nn.Linear(WIDTH, 2 * hidden, bias=False)  # ratchet: fixed
        self.down = nn.Linear(hidden, WIDTH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn, self.mlp = Attention(), SwiGLU()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


LOOKUPS = ("embed.weight", "bigram.weight")  # embedding tables: looked up, not multiplied


class GPT(nn.Module):
    """Bytes in, logits over the next byte out: (B, T) int64 -> (B, T, VOCAB_SIZE)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, WIDTH)
        self.bigram = nn.Embedding(BIGRAM_BUCKETS, WIDTH)  # trigram statistics from step one
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.head = nn.Linear(WIDTH, VOCAB_SIZE, bias=False)
        cos, sin = rotary_tables(MAX_SEQ_LEN, HEAD_DIM)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.zeros_(p)  # residual branches start as identity
            elif name == "head.weight":
                nn.init.normal_(p, std=0.001)  # start near the uniform distribution
            else:
                nn.init.normal_(p, std=1.0 if name in LOOKUPS else WIDTH**-0.5)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        cos, sin = self.cos[:T], self.sin[:T]
        previous = F.pad(idx[:, :-1], (1, 0))  # the byte before each position, 0 at the start
        pair = (previous * 257 + idx) % BIGRAM_BUCKETS  # a hash: few common pairs collide
        x = norm(self.embed(idx) + self.bigram(pair))
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(norm(x))


def flops_per_token(model: GPT) -> float:
    """6 x matmul parameters (forward + backward) + attention scores (PaLM's estimate)."""
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if n not in LOOKUPS)
    return 6 * matmul_params + 12 * DEPTH * WIDTH * SEQ_LEN  # ratchet: fixed


# --- Setup: device, seed, budget ----------------------------------------------------------

smoke = "--smoke" in sys.argv[1:]
if DEVICE == "auto":
    mps = torch.backends.mps.is_available()
    DEVICE = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
torch.set_flush_denormal(True)  # tiny weights early on would otherwise slow CPU math 2-10x
if DEVICE == "cpu" and hasattr(os, "sched_getaffinity"):
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core this process may use
if DEVICE.startswith("cuda"):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
autocast = (
    torch.autocast("cuda", dtype=torch.bfloat16)
    if DEVICE.startswith("cuda")
    else contextlib.nullcontext()  # float32 on CPU and MPS
)
seed = int(os.environ.get("RATCHET_SEED", "0"))
torch.manual_seed(seed)
budget = float(os.environ.get("RATCHET_BUDGET", TIME_BUDGET))
deadline = float(os.environ.get("RATCHET_DEADLINE", T_START + budget))
budget_start = deadline - budget  # progress is the fraction of this budget used
stop_at = deadline - min(EXPORT_RESERVE_S, 0.25 * budget)  # tiny budgets keep less  ratchet: fixed
assert SEQ_LEN <= MAX_SEQ_LEN, "the evaluator feeds MAX_SEQ_LEN tokens at most"

# --- Data ---------------------------------------------------------------------------------

data = load_train_tokens().to(DEVICE)
offsets = torch.arange(SEQ_LEN + 1, device=DEVICE)
generator = torch.Generator().manual_seed(seed)


def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH_SIZE random windows of the training bytes: inputs and next-byte targets."""
    starts = torch.randint(len(data) - SEQ_LEN - 1, (BATCH_SIZE, 1), generator=generator)
    chunk = data[starts.to(DEVICE) + offsets].long()
    return chunk[:, :-1], chunk[:, 1:]


# --- Model and optimizer ------------------------------------------------------------------

model = GPT().to(DEVICE)
num_params = sum(p.numel() for p in model.parameters())
train_model = torch.compile(model) if COMPILE and DEVICE.startswith("cuda") else model
embeddings = [p for n, p in model.named_parameters() if n in LOOKUPS]
matrices = [p for n, p in model.named_parameters() if n not in LOOKUPS]
groups = [
    {"params": matrices, "weight_decay": WEIGHT_DECAY, "lr_scale": 1.0},
    {"params": embeddings, "weight_decay": 0.0, "lr_scale": EMBED_LR_SCALE},
]
fused = DEVICE == "cpu" or DEVICE.startswith("cuda")  # one kernel for all tensors
optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=BETAS, fused=fused)


def lr_multiplier(progress: float) -> float:
    """Linear warmup, flat, then linear warmdown to zero, over the training time."""
    if progress < WARMUP_FRAC:
        return (progress + 1e-3) / WARMUP_FRAC  # ratchet: fixed
    return min(1.0, (1.0 - progress) / WARMDOWN_FRAC)  # ratchet: fixed


# --- Training loop: until the wall clock says stop ----------------------------------------

step, tokens, next_report, loss_value = 0, 0, 0.0, float("nan")
t_train = time.time()
train_span = max(stop_at - t_train, 1e-3)  # ratchet: fixed
t_steady, tokens_steady = t_train, 0  # throughput excludes the first steps (compile, warmup)
while True:
    progress = (time.time() - t_train) / train_span
    done = step >= SMOKE_STEPS if smoke else (progress >= 1.0 and step > 0)  # ratchet: fixed
    if done:
        break
    for group in optimizer.param_groups:
        multiplier = lr_multiplier(min(progress, 1.0))  # ratchet: fixed
        group["lr"] = LEARNING_RATE * group["lr_scale"] * multiplier
    x, y = get_batch()
    with autocast:
        logits = train_model(x)
    loss = F.cross_entropy(logits.float().view(-1, VOCAB_SIZE), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    step, tokens = step + 1, tokens + x.numel()
    if step == 3:  # ratchet: fixed
        t_steady, tokens_steady = time.time(), tokens
    used = (time.time() - budget_start) / budget
    if used >= next_report or smoke:
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            print(f"training diverged at step {step}: loss {loss_value}", flush=True)
            sys.exit(1)
        line = {"progress": round(min(used, 1.0), 4), "step": step, "train_loss": loss_value}
        print(json.dumps(line), flush=True)
        next_report = used + 1.0 / PROGRESS_LINES  # ratchet: fixed

# --- Export and summary -------------------------------------------------------------------

training_seconds = time.time() - t_train
steady_seconds = time.time() - t_steady
if step > 3:  # ratchet: fixed
    tokens_per_second = (tokens - tokens_steady) / steady_seconds
else:
    tokens_per_second = tokens / training_seconds
mfu = 100 * tokens_per_second * flops_per_token(model) / peak_flops(DEVICE)  # ratchet: fixed
export_model(model, "model.pt2")

print("---")
print(f"training_seconds: {training_seconds:.1f}")
print(f"total_seconds:    {time.time() - T_START:.1f}")
print(f"peak_vram_mb:     {peak_memory_mb(DEVICE):.1f}")
print(f"mfu_percent:      {mfu:.2f}")
print(f"tokens_per_sec:   {tokens_per_second:.0f}")
print(f"total_tokens_M:   {tokens / 1e6:.2f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.2f}")
print(f"depth:            {DEPTH}")
print(f"device:           {device_name(DEVICE)}")
