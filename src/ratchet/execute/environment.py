"""The environment an experiment sees: the user's, minus secrets, plus Ratchet's variables.

The proposer writes the code that runs here, so an API key left in the
environment is an API key handed to generated code. Names that look like
secrets are dropped unless the study allows them by name
(``[run] env_allow``). Matching is case-insensitive because shells and
tools disagree about case (``hf_token`` and ``HF_TOKEN`` are the same secret).

Scrubbing a child's environment is not enough: ``/proc/<pid>/environ`` shows
the environment a process was *started* with, to every process of the same
user, and the shepherd (a fork of Ratchet) shares Ratchet's. So the
``ratchet`` command starts by re-executing itself without the secret names
(``hold_secrets``): the same process (pid, terminal, signals, exit code), a
clean environment block, and the secrets read back from an inherited
in-memory file into this module only. ``user_environ()`` is the user's full
environment for the few who need it: the llm proposer's key, an agent
proposer's own process, and the names a study lets through ``env_allow``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

__all__ = [
    "SECRET_PATTERNS",
    "scrub",
    "experiment_env",
    "hold_secrets",
    "adopt_environ",
    "user_environ",
]

SECRET_PATTERNS = ("*_API_KEY", "*_TOKEN", "*SECRET*", "*PASSWORD*")
HELD_FD = "RATCHET_HELD_SECRETS_FD"  # names the inherited file; holds no secret itself
_held: dict[str, str] = {}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    upper = name.upper()
    return any(fnmatchcase(upper, pattern.upper()) for pattern in patterns)


def scrub(environ: Mapping[str, str], allow: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``environ`` without secret-looking names, except those matching ``allow``."""
    allowed = tuple(allow)
    return {
        name: value
        for name, value in environ.items()
        if not _matches(name, SECRET_PATTERNS) or _matches(name, allowed)
    }


def _seconds(value: float) -> str:
    """Seconds as a shell-friendly number: ``10`` rather than ``10.0``, ``2.5`` as is."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def experiment_env(
    environ: Mapping[str, str],
    *,
    allow: Iterable[str] = (),
    seed: int,
    budget: float,
    deadline: float,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of an experiment's command.

    ``RATCHET_SEED`` lets deterministic studies vary only by seed;
    ``RATCHET_BUDGET`` (seconds) and ``RATCHET_DEADLINE`` (unix time) let a
    training loop stop itself cleanly before the hard kill;
    ``PYTHONUNBUFFERED=1`` makes a Python child's prints stream, so progress
    lines arrive while the run goes. ``extra`` comes last and wins.
    """
    env = scrub(environ, allow)
    env["PYTHONUNBUFFERED"] = "1"
    env["RATCHET_SEED"] = str(int(seed))
    env["RATCHET_BUDGET"] = _seconds(budget)
    env["RATCHET_DEADLINE"] = repr(float(deadline))
    env.update(extra or {})
    return env


def user_environ() -> dict[str, str]:
    """The user's full environment: this process's, plus the secrets held in memory."""
    return {**os.environ, **_held}


def adopt_environ(environ: Mapping[str, str]) -> None:
    """Take another Ratchet process's ``user_environ()`` as this one's, secrets held in
    memory only (a local worker process, ``execute.isolated``, gets its driver's)."""
    _held.update({k: v for k, v in environ.items() if os.environ.get(k) != v})


def hold_secrets(argv: Sequence[str] | None = None) -> None:
    """Keep secret-looking variables in memory only; re-execute without them if needed.

    Called first thing by the ``ratchet`` command (never by library code: it
    replaces the running program). In the re-executed process it reads the
    held secrets back. Without secrets in the environment it does nothing,
    so the re-execution (one interpreter start) is paid only when there is
    something to hide. If the re-execution fails, the secrets still leave
    ``os.environ`` (no child inherits them) and Ratchet carries on.
    """
    inherited = os.environ.pop(HELD_FD, None)
    if inherited is not None:
        _held.update(_read_held(inherited))
    kept = scrub(os.environ)
    secrets = {name: value for name, value in os.environ.items() if name not in kept}
    if not secrets:
        return
    argv = list(sys.orig_argv if argv is None else argv)
    fd = _memory_file(json.dumps({**_held, **secrets}).encode())
    env = dict(kept)
    if fd is not None:
        env[HELD_FD] = str(fd)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, [sys.executable, *argv[1:]], env)
        except OSError:
            os.close(fd)
    _held.update(secrets)
    for name in secrets:
        del os.environ[name]


def _memory_file(data: bytes) -> int | None:
    """An inheritable descriptor reading back ``data``: a memfd (Linux), else a pipe."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("ratchet-held", 0)
        os.set_inheritable(fd, True)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        written = os.write(write, data)
    except BlockingIOError:
        written = 0
    os.close(write)
    if written < len(data):  # more than a pipe holds: no re-execution
        os.close(read)
        return None
    os.set_inheritable(read, True)
    return read


def _read_held(fd_text: str) -> dict[str, str]:
    """The secrets from the descriptor the previous program left; {} if it is unusable."""
    try:
        fd = int(fd_text)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        os.close(fd)
        held = json.loads(b"".join(chunks))
    except (ValueError, OSError):
        return {}
    if not isinstance(held, dict):
        return {}
    return {str(name): str(value) for name, value in held.items()}
