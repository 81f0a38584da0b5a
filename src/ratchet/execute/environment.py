"""The environment an experiment sees: the user's, minus secrets, plus Ratchet's variables.

The proposer writes the code that runs here, so an API key left in the
environment is an API key handed to generated code. Names that look like
secrets are dropped unless the study allows them by name
(``[run] env_allow``). Matching is case-insensitive because shells and
tools disagree about case (``hf_token`` and ``HF_TOKEN`` are the same secret).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

__all__ = ["SECRET_PATTERNS", "scrub", "experiment_env"]

SECRET_PATTERNS = ("*_API_KEY", "*_TOKEN", "*SECRET*", "*PASSWORD*")


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
