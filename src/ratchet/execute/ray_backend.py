"""The Ray executor: each sample a Ray task; the ledger and git stay with the driver.

``[execute] backend = "ray"`` makes ``execute.factory.make_executor`` build
a ``RayExecutor`` per worker. It has ``BaseExecutor``'s methods, so the loop
treats it like the local one. For each smoke, measure or confirm it

1. collects the candidate's files from its checkout (the study directory),
   names them by their content hash and puts them in Ray's object store once
   per hash (``ray_node.collect_files``, ``files_digest``);
2. submits one task with the study's ``[resources]`` (``num_cpus``,
   ``num_gpus``, ``memory``); on the node the task runs the local
   ``Executor``, with the same shepherd, sandbox and sealed evaluate phase,
   in a scratch directory (``ray_node.run_sample``; a node fetches a file set
   only the first time it sees its hash);
3. while it runs, drains the lines and progress points the task streams to a
   mailbox actor on the driver's node, and hands them to the observer and the
   pruner (``watch``); a stop the pruner asks for goes back the same way and
   the node stops the whole tree (status ``pruned``);
4. writes the phases' logs into the candidate's log directory, as the local
   executor does, and returns the ``Measurement``.

A worker or node lost mid-sample (Ray reports the task's worker or node
dead) is retried once on another node; lost again, the sample is a
``crash`` with the reason "worker lost". Ctrl-C while a sample runs (or
``interrupt()`` from another thread) stops its tree on the node as a pruned
run's is (if it has not ended within its grace and 10 s more, or at a second
Ctrl-C, its worker is killed, and its shepherd kills the tree); the sample is
``interrupted``.

Connecting: ``address`` (``[execute] address``), else ``RAY_ADDRESS``, else a
Ray started on this machine. An already connected driver (``ray.init`` done
by the caller) is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RatchetError
from ..metrics import ProgressPoint
from ..observer import Observer
from ..study import Study
from .base import Watch
from .phases import Candidate, Measurement, plain_spec
from .ray_node import FileSet, collect_files, files_digest, run_sample

__all__ = [
    "RayExecutor",
    "require_ray",
    "task_options",
    "unplaceable",
    "INSTALL_HINT",
    "WORKER_LOST",
]

INSTALL_HINT = "pip install 'ratchetlab[ray]'"
WORKER_LOST = "worker lost"
_POLL_S = 0.05  # how often the driver drains a running sample's lines
_KEEP_SHIPPED = 16  # file sets a driver keeps in the object store (a sample's own is in use)
_REACH_S = 5.0  # how long a cluster's address may take to accept a connection
_CANCEL_WAIT_S = 10.0  # after Ctrl-C, how long to wait for a stopped or killed task to end
INTERRUPTED = "stopped by Ctrl-C on the driver"
_connect_lock = threading.Lock()
_mailbox: tuple[str, Any] | None = None  # (Ray job id, the mailbox actor of that connection)


def require_ray(where: str = "[execute] backend = \"ray\"") -> Any:
    """The ``ray`` module, or a ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{where} needs Ray, which is not installed — run {INSTALL_HINT}"
            " (on the driver and on every node of the cluster)"
        ) from None
    return ray


def connect(ray: Any, target: str) -> None:
    """Join the cluster at ``target`` (``"local"``: start one on this machine), once."""
    with _connect_lock:
        if ray.is_initialized():
            return
        _check_reachable(target)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": "error"}
        if target == "local":
            options["include_dashboard"] = False
        try:
            ray.init(address=target, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {target!r}: {exc} — check"
                " [execute] address (or RAY_ADDRESS) and that the cluster is up"
            ) from None


def _check_reachable(target: str, timeout: float = _REACH_S) -> None:
    """A ``host:port`` nobody answers on is one sentence now: Ray itself would retry for
    minutes, printing a warning every few seconds."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "://" in target:
        return  # "local", "auto", a ray:// client address: Ray's own handling
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {target!r} ({exc.strerror or exc}) — start it"
            " (`ray start --head` there) or fix [execute] address (or RAY_ADDRESS)"
        ) from None


def _remote(ray: Any) -> tuple[Any, Any]:
    """The task and the mailbox actor, declared once Ray is importable."""
    global _mailbox
    with _connect_lock:
        job = ray.get_runtime_context().get_job_id()
        if _mailbox is None or _mailbox[0] != job:  # one per connection (a test may reconnect)
            node = ray.get_runtime_context().get_node_id()
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
            actor = ray.remote(num_cpus=0, max_restarts=-1)(_Mailbox)
            _mailbox = (job, actor.options(scheduling_strategy=here).remote())
    return ray.remote(max_retries=0)(_task), _mailbox[1]


class _Mailbox:
    """The driver-side actor running samples push their events into (one per driver)."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[Any, ...]]] = {}
        self.stops: dict[str, str] = {}

    def push(self, key: str, events: list[tuple[Any, ...]]) -> str | None:
        self.events.setdefault(key, []).extend(events)
        return self.stops.get(key)

    def drain(self, key: str) -> list[tuple[Any, ...]]:
        return self.events.pop(key, [])

    def stop(self, key: str, reason: str) -> None:
        self.stops[key] = reason

    def forget(self, key: str) -> None:
        self.events.pop(key, None)
        self.stops.pop(key, None)


def _task(
    kind: str,
    spec: Mapping[str, Any],
    digest: str,
    holder: list[Any],
    seed: int,
    commit: str,
    exp_id: int,
    mailbox: Any,
    key: str,
) -> dict[str, Any]:
    """The Ray task: ``ray_node.run_sample`` with Ray's object store and the mailbox."""
    import ray

    def fetch() -> FileSet:
        return ray.get(holder[0])

    def push(events: list[tuple[Any, ...]]) -> str | None:
        return ray.get(mailbox.push.remote(key, events))

    node = ray.get_runtime_context().get_node_id()
    return run_sample(kind, spec, digest, fetch, seed, commit, exp_id, push, node=node)


@dataclass
class _Follow:
    """The driver's view of one running sample: where its events go."""

    observer: Observer
    exp_id: int
    watch: Watch | None
    phase: str = ""
    node: str = ""  # the Ray node id the sample runs on, once it said
    delivered: int = 0
    stop: str | None = None


class _Lost(Exception):
    """Ray lost the sample's worker or node."""


class RayExecutor:
    """Runs each sample of a candidate as a Ray task (see the module's notes)."""

    def __init__(
        self,
        study: Study,
        *,
        pinned: Mapping[str, bytes],
        observer: Observer | None = None,
        budget: float | None = None,
        slot: object | None = None,  # the local pool's CPU/GPU slot: Ray places tasks itself
        address: str | None = None,
    ) -> None:
        target = address or study.execute.address or os.environ.get("RAY_ADDRESS") or "local"
        if target == "local" and "ray" not in sys.modules:
            # Read when Ray is imported: a Ray started here stays on 127.0.0.1.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        self._ray = ray = require_ray()
        connect(ray, target)
        self.study = study
        self.observer = observer or Observer()
        self.budget = budget or study.run.budget
        self._spec = ray.put(plain_spec(study, pinned, self.budget))
        self._task, self._mailbox = _remote(ray)
        self._interrupted = threading.Event()  # interrupt(): every sample ends, now and later
        self._files: OrderedDict[tuple[str, str], tuple[str, Any]] = OrderedDict()
        # digest -> the object holding that file set; the oldest are let go (Ray frees them)
        self._stored: OrderedDict[str, Any] = OrderedDict()
        self._options = task_options(study)
        problem = unplaceable(self._options, ray.nodes())
        if problem:
            raise ConfigError(
                f"{study.config_path}: [resources] asks for {problem} per experiment, and no node"
                " of the Ray cluster has that much — lower it, or add a node that has it"
            )

    def smoke(self, candidate: Candidate) -> Measurement | None:
        """The study's cheap pre-check on a node, or None when it has none."""
        if not self.study.run.smoke:
            return None
        return self._sample("smoke", candidate)

    def measure(self, candidate: Candidate, watch: Watch | None = None) -> Measurement:
        """Run phase, then evaluate phase, on a node: one sample."""
        m = self._sample("measure", candidate, watch)
        assert m is not None
        return m

    def confirm(self, candidate: Candidate) -> Measurement:
        """The study's ``[confirm]`` command on a node."""
        m = self._sample("confirm", candidate)
        assert m is not None
        return m

    def interrupt(self) -> None:
        """Stop the sample in flight, from any thread (the run's Ctrl-C with several workers).

        Its worker is killed, so its shepherd kills the experiment's tree; the
        sample, and any this executor is asked for later, ends ``interrupted``.
        """
        self._interrupted.set()

    # --- one sample ---------------------------------------------------------------------

    def _sample(
        self, kind: str, candidate: Candidate, watch: Watch | None = None
    ) -> Measurement | None:
        if self._interrupted.is_set():
            return Measurement("interrupted", reason=INTERRUPTED)
        digest, files = self._ship(candidate)
        lost_on: str | None = None
        for attempt in (1, 2):
            follow = _Follow(self.observer, candidate.exp_id, watch)
            try:
                result = self._attempt(kind, candidate, digest, files, follow, lost_on)
            except _Lost as lost:
                if attempt == 2:
                    return Measurement("crash", reason=f"{WORKER_LOST}: {lost} (retried once)")
                lost_on = follow.node
                self.observer.message(
                    f"experiment #{candidate.exp_id}: {WORKER_LOST} ({lost}); retrying elsewhere"
                )
                continue
            if result is None:
                return Measurement("interrupted", reason=INTERRUPTED)
            _write_logs(candidate.log_dir, result["logs"])
            return result["measurement"]
        raise AssertionError("unreachable")

    def _ship(self, candidate: Candidate) -> tuple[str, Any]:
        """The candidate's file set: its hash, and the object store entry holding it.

        A commit's files never change, so a candidate named by its commit is
        read and hashed once; one without a commit is read every time.
        """
        key = (str(candidate.study_dir), candidate.commit)
        if candidate.commit and key in self._files:
            self._files.move_to_end(key)
            return self._files[key]
        files = collect_files(candidate.study_dir)
        digest = files_digest(files)
        if digest not in self._stored:
            self._stored[digest] = self._ray.put(files)
        self._stored.move_to_end(digest)
        shipped = (digest, self._stored[digest])
        if candidate.commit:
            self._files[key] = shipped
        for held in (self._files, self._stored):
            while len(held) > _KEEP_SHIPPED:
                held.popitem(last=False)
        return shipped

    def _attempt(
        self,
        kind: str,
        candidate: Candidate,
        digest: str,
        files: Any,
        follow: _Follow,
        avoid: str | None,
    ) -> dict[str, Any] | None:
        """Submit the task and follow it to its end; None when Ctrl-C stopped it."""
        ray = self._ray
        key = uuid.uuid4().hex
        options = dict(self._options)
        elsewhere = self._other_node(avoid) if avoid else None
        if elsewhere is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(elsewhere, soft=True)
        ref = self._task.options(**options).remote(
            kind,
            self._spec,
            digest,
            [files],
            candidate.seed,
            candidate.commit,
            candidate.exp_id,
            self._mailbox,
            key,
        )
        try:
            try:
                while not ray.wait([ref], timeout=_POLL_S)[0]:
                    self._deliver(self._drain(key), follow, key)
                    if self._interrupted.is_set():
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                self._stop_now(ref, key)
                return None
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause
                if isinstance(cause, RatchetError):
                    raise cause from None
                raise
            except ray.exceptions.RayError as error:
                raise _Lost(_describe_loss(error)) from None
            if follow.delivered < result["sent"]:
                self._deliver(self._drain(key), follow, key)
            self._deliver(result["events"], follow, key)
            return result
        finally:
            self._mailbox.forget.remote(key)

    def _stop_now(self, ref: Any, key: str) -> None:
        """Ctrl-C: the node stops the sample's tree as for a pruned run (grace included);
        if the sample has not ended by then, its worker is killed, and its shepherd
        kills the tree. A second Ctrl-C goes straight to the kill."""
        ray = self._ray
        try:
            self._mailbox.stop.remote(key, INTERRUPTED)
            wait = self.study.run.grace + _CANCEL_WAIT_S
            if ray.wait([ref], timeout=wait)[0]:
                return
        except KeyboardInterrupt:
            pass
        ray.cancel(ref, force=True)
        with contextlib.suppress(KeyboardInterrupt):
            ray.wait([ref], timeout=_CANCEL_WAIT_S)

    def _drain(self, key: str) -> list[tuple[Any, ...]]:
        """The sample's events waiting in the mailbox; none while the mailbox restarts."""
        try:
            return self._ray.get(self._mailbox.drain.remote(key))
        except self._ray.exceptions.RayError:
            return []  # lines for the live view are lost; the result itself is not

    def _deliver(self, events: list[tuple[Any, ...]], follow: _Follow, key: str) -> None:
        """Hand a batch of the sample's events to the observer and the pruner, in order."""
        for event in events:
            follow.delivered += 1
            kind = event[0]
            if kind == "line":
                follow.observer.output_line(follow.exp_id, event[1])
            elif kind == "node":
                follow.node = event[1]
            elif kind == "phase":
                follow.phase = event[1]
                follow.observer.phase_started(follow.exp_id, event[1], event[2])
            elif kind == "point" and follow.watch is not None and follow.stop is None:
                point: ProgressPoint = event[1]
                reason = follow.watch(point)
                if reason:
                    follow.stop = reason
                    self._mailbox.stop.remote(key, reason)

    def _other_node(self, avoid: str) -> str | None:
        """An alive node other than ``avoid`` that has the CPUs a sample asks for."""
        need = float(self._options["num_cpus"])
        for node in self._ray.nodes():
            if node.get("Alive") and node["NodeID"] != avoid:
                if node.get("Resources", {}).get("CPU", 0.0) >= need:
                    return node["NodeID"]
        return None


def task_options(study: Study) -> dict[str, Any]:
    """Ray's resource options for one sample, from ``[resources]`` (pure).

    ``cpus`` unset is one CPU (Ray's default for a task).
    """
    spec = study.resources
    options: dict[str, Any] = {"num_cpus": spec.cpus or 1, "num_gpus": spec.gpus}
    if spec.memory_mb is not None:
        options["memory"] = int(spec.memory_mb * 1_000_000)
    if spec.custom:
        options["resources"] = dict(spec.custom)
    return options


def unplaceable(options: Mapping[str, Any], nodes: list[dict[str, Any]]) -> str:
    """What no alive node has enough of for one sample ("2 GPU"), or "" when one has (pure).

    Ray would otherwise wait for such a node forever, without a word.
    """
    wanted = {"CPU": float(options["num_cpus"]), "GPU": float(options["num_gpus"])}
    if "memory" in options:
        wanted["memory"] = float(options["memory"])
    wanted.update({k: float(v) for k, v in options.get("resources", {}).items()})
    wanted = {name: amount for name, amount in wanted.items() if amount > 0}
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    if any(all(have.get(k, 0.0) >= v for k, v in wanted.items()) for have in alive):
        return ""
    short = [
        (name, amount)
        for name, amount in wanted.items()
        if not any(have.get(name, 0.0) >= amount for have in alive)
    ]
    name, amount = (short or list(wanted.items()))[0]
    shown = f"{amount / 1_000_000:g} MB of memory" if name == "memory" else f"{amount:g} {name}"
    return shown if short else f"{', '.join(f'{v:g} {k}' for k, v in wanted.items())} at once"


def _describe_loss(error: Exception) -> str:
    """One line for a lost worker or node, from Ray's (multi-line) error."""
    name = type(error).__name__
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{name}: {first[:200]}" if first else name


def _write_logs(log_dir: Path, logs: Mapping[str, bytes]) -> None:
    """The node's phase logs, where ``ratchet show --log`` reads the local executor's."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for name, data in logs.items():
        (log_dir / name).unlink(missing_ok=True)
        (log_dir / name).write_bytes(data)
