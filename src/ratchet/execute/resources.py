"""Sharing one machine between workers: what it has, and each worker's slot of it.

``[resources]`` says what one experiment needs (``cpus``, ``gpus``,
``memory_mb``). ``plan_slots`` cuts the machine into that many equal,
disjoint slots, one per worker: worker ``k`` gets CPUs ``k*c .. k*c+c-1`` of
the CPUs this process may use, GPUs ``k*g ..`` likewise. The local executor
pins every phase of an experiment to its slot's CPUs (CPU affinity, inherited
by everything the command starts) and tells thread pools and CUDA what they
may use (``Slot.environ``). ``--workers auto`` is as many slots as fit.

How the machine is found (``detect_machine``), cheapest first:

- CPUs: ``os.sched_getaffinity(0)``, the CPUs this process may run on (a
  ``taskset`` or container limit is respected), else ``os.cpu_count()``.
- GPUs, only when a study asks for some: ``CUDA_VISIBLE_DEVICES`` when set
  (the user already chose; its entries are passed on as they are, indices or
  UUIDs), else ``nvidia-smi``, else ``/proc/driver/nvidia/gpus``, else torch
  only if something already imported it. Importing torch here would cost
  Ratchet's start seconds and may initialise CUDA in a process that forks.
- Memory: the machine's physical memory.

A slot that restricts nothing (no ``[resources]``) has no CPUs, no GPUs and
an empty environment: the phase runs exactly as with one worker.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..study import Study

__all__ = ["Machine", "Slot", "THREAD_VARIABLES", "detect_machine", "plan_slots"]

# Thread pools that read their size from the environment (OpenMP covers torch's intra-op pool).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_NVIDIA_SMI_TIMEOUT_S = 10.0
_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class Slot:
    """One worker's share of the machine: CPU numbers, GPU ids, memory per experiment."""

    index: int
    cpus: tuple[int, ...] = ()  # () = every CPU, unpinned
    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES entries; () = not restricted
    memory_mb: float | None = None  # caps [run] max_memory_mb; None = that limit alone

    @property
    def name(self) -> str:
        """The worker's name, as in its worktree ``.ratchet/worktrees/<tag>/w<k>``."""
        return f"w{self.index}"

    def environ(self) -> dict[str, str]:
        """Variables that keep the experiment's thread pools and CUDA inside the slot."""
        env = {name: str(len(self.cpus)) for name in THREAD_VARIABLES} if self.cpus else {}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


@dataclass(frozen=True)
class Machine:
    """What this process may use; ``gpus`` is None when they were not looked for."""

    cpus: tuple[int, ...]
    gpus: tuple[str, ...] | None = None
    memory_mb: float | None = None


def detect_machine(*, gpus: bool = True) -> Machine:
    """This machine's CPUs, memory and (when ``gpus``) GPUs, as the module's notes say."""
    return Machine(
        cpus=_cpus(), gpus=detect_gpus(os.environ) if gpus else None, memory_mb=_memory_mb()
    )


def _cpus() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def _memory_mb() -> float | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (ValueError, OSError, AttributeError):
        return None


def detect_gpus(environ: dict[str, str] | os._Environ[str]) -> tuple[str, ...]:
    """The GPU ids experiments may be given, as ``CUDA_VISIBLE_DEVICES`` entries."""
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:  # CUDA reads the list up to its first invalid entry ("-1": none)
        entries = [part.strip() for part in chosen.split(",")]
        return tuple(itertools.takewhile(lambda part: part and not part.startswith("-"), entries))
    found = _nvidia_smi(environ.get("PATH"))
    if found is None and _NVIDIA_PROC.is_dir():
        found = tuple(str(i) for i in range(len(list(_NVIDIA_PROC.iterdir()))))
    if found is None and "torch" in sys.modules:  # already paid for by someone else
        torch = sys.modules["torch"]
        found = tuple(str(i) for i in range(torch.cuda.device_count()))
    return found or ()


def _nvidia_smi(path: str | None) -> tuple[str, ...] | None:
    """GPU indices from ``nvidia-smi``; None when it is missing or fails."""
    exe = shutil.which("nvidia-smi", path=path)
    if exe is None:
        return None
    query = [exe, "--query-gpu=index,memory.total", "--format=csv,noheader"]
    try:
        done = subprocess.run(
            query, capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return tuple(
        line.split(",")[0].strip() for line in done.stdout.splitlines() if line.strip()
    )


def plan_slots(study: Study, workers: int | None, machine: Machine | None = None) -> list[Slot]:
    """One slot per worker (``workers`` None = "auto": as many as fit), disjoint CPUs and GPUs.

    Without ``[resources] cpus`` the workers share every CPU, so any number
    of them fits (a sleep- or network-bound study may want more workers than
    CPUs); "auto" then means one per CPU. A number of workers that does not
    fit raises ``ConfigError`` naming what is needed, what the machine has,
    and how many would fit.
    """
    need = study.resources
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more workers, or auto")
    if machine is None:
        machine = detect_machine(gpus=need.gpus > 0)
    fits = _capacity(study, machine)
    if workers is None:
        count = len(machine.cpus) if fits is None else fits
    elif fits is not None and workers > fits:
        raise ConfigError(_too_many(study, machine, workers, fits))
    else:
        count = workers
    c, g = need.cpus or 0, need.gpus
    gpus = machine.gpus or ()
    return [
        Slot(
            index=k,
            cpus=machine.cpus[k * c : (k + 1) * c] if c else (),
            gpus=gpus[k * g : (k + 1) * g] if g else (),
            memory_mb=need.memory_mb,
        )
        for k in range(count)
    ]


def _capacity(study: Study, machine: Machine) -> int | None:
    """How many experiments fit side by side (None: no resource bounds it).

    ConfigError when not even one does.
    """
    need = study.resources
    where = f"{study.config_path}: [resources]"
    limits = []
    if need.cpus is not None:
        have = len(machine.cpus)
        if need.cpus > have:
            raise ConfigError(
                f"{where} cpus = {need.cpus} but this machine lets Ratchet use {have}"
                f" CPU{'s' if have != 1 else ''} — lower cpus to at most {have}"
            )
        limits.append(have // need.cpus)
    if need.gpus:
        gpus = len(machine.gpus or ())
        if need.gpus > gpus:
            raise ConfigError(
                f"{where} gpus = {need.gpus} but {gpus} GPU{'s' if gpus != 1 else ''} found"
                " (CUDA_VISIBLE_DEVICES, nvidia-smi) — lower gpus, or run where the GPUs are"
            )
        limits.append(gpus // need.gpus)
    if need.memory_mb is not None and machine.memory_mb is not None:
        if need.memory_mb > machine.memory_mb:
            raise ConfigError(
                f"{where} memory_mb = {need.memory_mb:g} but this machine has"
                f" {machine.memory_mb:.0f} MB — lower memory_mb"
            )
        limits.append(int(machine.memory_mb // need.memory_mb))
    return min(limits) if limits else None


def _too_many(study: Study, machine: Machine, workers: int, fits: int) -> str:
    """The one sentence for ``--workers N`` beyond what the machine holds."""
    need = study.resources
    wants = []
    if need.cpus is not None:
        wants.append(f"{workers * need.cpus} CPUs ({need.cpus} each, {len(machine.cpus)} usable)")
    if need.gpus:
        found = len(machine.gpus or ())
        wants.append(f"{workers * need.gpus} GPUs ({need.gpus} each, {found} found)")
    if need.memory_mb is not None and machine.memory_mb is not None:
        wants.append(
            f"{workers * need.memory_mb:g} MB ({need.memory_mb:g} each,"
            f" {machine.memory_mb:.0f} MB here)"
        )
    return (
        f"{workers} workers need {' and '.join(wants)} by {study.config_path} [resources]"
        f" — use at most {fits} worker{'s' if fits != 1 else ''} (or --workers auto),"
        " or ask for less in [resources]"
    )
