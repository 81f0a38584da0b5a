"""The ``ratchet.toml`` schema: loading, validation, and the ``Study`` it becomes.

The file is read once, at the entry point, into frozen pydantic models; every
other part receives the ``Study``. Anything wrong with the file ends in a
``ConfigError`` whose message names the file, the key, and the fix.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_NAME",
    "Study",
    "StudySection",
    "FilesSpec",
    "RunPhase",
    "EvaluatePhase",
    "MetricSpec",
    "DecisionSpec",
    "PruneSpec",
    "ConfirmSpec",
    "ProposerSpec",
    "SearchSpec",
    "ExecuteSpec",
    "SpaceParam",
    "ExecuteSpec",
    "ResourcesSpec",
    "load_study",
    "matches",
]

CONFIG_NAME = "ratchet.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudySection(_Section):
    name: str = Field(min_length=1)
    program: str = "program.md"


class FilesSpec(_Section):
    """Globs: ``editable`` (``path:EVOLVE-BLOCK`` limits a file to its marked regions),
    ``protected`` (never edited) and ``context`` (shown to the LLM and agent proposers,
    read-only: a proposal editing one is rejected)."""

    editable: list[str] = Field(min_length=1)
    protected: list[str] = []
    context: list[str] = []


class _Phase(_Section):
    command: str = Field(min_length=1)
    budget: float = Field(gt=0)
    grace: float = Field(default=5.0, ge=0)


class RunPhase(_Phase):
    """The candidate's own phase: the command the proposer's change affects.

    ``command`` may be left out when ``[evaluate]`` runs the candidate itself
    (through ``ratchet.evaluation.load_candidate``); the section still holds
    the sandbox and the limits, and ``budget`` then defaults to the evaluate
    phase's.
    """

    command: str | None = Field(default=None, min_length=1)
    smoke: str | None = None
    smoke_budget: float | None = Field(default=None, gt=0)
    sandbox: Literal["auto", "none", "process", "bwrap"] = "auto"
    env_allow: list[str] = []
    log_cap_mb: float = Field(default=10.0, gt=0)
    # Resource limits of every phase's process tree (levels process and bwrap);
    # defaults are far above what a normal training run uses. None = no limit.
    max_memory_mb: float | None = Field(default=None, gt=0)
    max_file_mb: float | None = Field(default=4096.0, gt=0)
    max_processes: int | None = Field(default=1024, gt=0)
    max_open_files: int | None = Field(default=4096, gt=0)
    # Paths (~ and $VARS expanded) the run and smoke phases must not see under bwrap,
    # e.g. a held-out validation split that only the evaluate phase may read.
    hide: list[str] = []


def _input_paths(paths: list[str] | None) -> list[str] | None:
    """Declared inputs: plain relative paths (a file or a directory), never globs.

    No globs: what the evaluation may see is exactly the list, and a declared
    input that is missing can be named in the crash reason.
    """
    if paths is None:
        return None
    clean = []
    for raw in paths:
        path = PurePosixPath(raw)
        if not raw.strip() or path.is_absolute() or ".." in path.parts or path == PurePosixPath():
            raise ValueError(f"input {raw!r} must be a path relative to the study directory")
        if any(ch in raw for ch in "*?[]"):
            raise ValueError(f"input {raw!r} is a glob; list plain paths (a directory is whole)")
        if any(ord(ch) < 32 for ch in raw) or path.parts[0] in (".ratchet", ".git"):
            raise ValueError(f"input {raw!r} is not a path the run phase can declare")
        clean.append(path.as_posix())
    return clean


class EvaluatePhase(_Phase):
    """Fixed code run after the run phase; when present, the only source of the metric.

    ``inputs`` are the run phase's declared outputs, the only files of the
    candidate's the sealed evaluation sees (required; ``[]`` when the
    evaluator needs nothing but the harness).
    """

    budget: float = Field(default=60.0, gt=0)
    inputs: list[str] | None = None

    @field_validator("inputs")
    @classmethod
    def _plain_paths(cls, paths: list[str] | None) -> list[str] | None:
        return _input_paths(paths)


class MetricSpec(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
    goal: Literal["minimize", "maximize"] = "minimize"
    # Rules on the extra ``key: value`` lines (``constraints.py``): a keep that breaks one
    # is discarded, the reason naming it. Checked at load (``_check_constraints``).
    constraints: list[str] = []


class DecisionSpec(_Section):
    """How a candidate is judged against the incumbent (see judge.py)."""

    rule: Literal["noise-aware", "strict"] = "noise-aware"
    baseline_samples: int = Field(default=3, ge=1, le=50)
    max_samples: int = Field(default=20, ge=1, le=50)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_delta: float = Field(default=0.0, ge=0)
    remeasure_every: int = Field(default=10, ge=0)  # 0 = never re-measure the incumbent
    complexity_weight: float = Field(default=0.0, ge=0)
    # The least spread the judge assumes, as a fraction of the metric's value; None = 0.02 for
    # a metric named as a time (runtime_ms, latency, ...), else 0 (``decide/timing.py``).
    noise_floor: float | None = Field(default=None, ge=0, lt=1)
    # Sample candidate and incumbent in turns and compare them pair by pair, so drift of the
    # machine cancels; "auto" = on for a timing metric (``decide/sampling.py``).
    interleave: Literal["auto"] | bool = "auto"

    @field_validator("interleave", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: object) -> object:
        if value == "auto" or isinstance(value, bool):
            return value
        raise ValueError('must be "auto", true or false')


class PruneSpec(_Section):
    enabled: bool = True
    min_progress: float = Field(default=0.25, ge=0, le=1)
    key: str | None = None  # progress value to compare; default: the metric, else the first


class ConfirmSpec(_Section):
    """A second, independent check run on each newly kept commit."""

    command: str = Field(min_length=1)
    budget: float = Field(default=60.0, gt=0)
    grace: float = Field(default=5.0, ge=0)
    revert: bool = False  # revert a keep that does not confirm
    inputs: list[str] | None = None  # as [evaluate] inputs: what the sealed check may read

    @field_validator("inputs")
    @classmethod
    def _plain_paths(cls, paths: list[str] | None) -> list[str] | None:
        return _input_paths(paths)


class SpaceParam(_Section):
    """One dimension of ``[search.space]``: a range (``low``/``high``, ``log``, ``step``)
    or a list of ``choices``. Both bounds written as TOML integers make it an int."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[bool | int | float | str] | None = Field(default=None, min_length=1)
    integer: bool = False  # set when low and high are both TOML integers

    @model_validator(mode="before")
    @classmethod
    def _note_ints(cls, data: object) -> object:
        if isinstance(data, dict) and all(type(data.get(k)) is int for k in ("low", "high")):
            return {**data, "integer": True}
        return data

    @model_validator(mode="after")
    def _check(self) -> SpaceParam:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (or choices = [...])")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log = true needs low > 0")
        return self


class SearchSpec(_Section):
    """How the next parent is chosen (policies/) and the sweep proposer's search space."""

    policy: Literal["greedy", "tree", "islands"] = "greedy"
    # tree
    exploration: float = Field(default=1.0, ge=0)
    debug_attempts: int = Field(default=2, ge=0)
    debug_probability: float = Field(default=0.5, ge=0, le=1)
    draft_probability: float = Field(default=0.2, ge=0, le=1)
    # islands
    islands: int = Field(default=4, ge=1, le=64)
    migrate_every: int = Field(default=10, ge=0)  # 0 = never
    stagnation: int = Field(default=15, ge=0)  # 0 = never restart
    # sweep
    sampler: Literal["tpe", "cmaes", "random"] = "tpe"
    space: dict[str, SpaceParam] = {}


class ProposerSpec(_Section):
    """One proposer's settings: the ``[proposer]`` table, or one of several ``[[proposer]]``
    tables (an ensemble whose members take turns, each with its own settings)."""

    kind: Literal["mutate", "sweep", "llm", "agent", "replay"] = "mutate"
    # [[proposer]] members: the name the ledger records (default: the kind) and the
    # bandit's prior (relative: only the ratios between members matter; see ensemble.py)
    name: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[\w.:-]+$")
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    replay: str | None = None
    max_changes: int = Field(default=3, ge=1, le=10)
    # llm
    provider: Literal["auto", "openai", "anthropic"] = "auto"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=4096, gt=0)  # per answer
    prompt_tokens: int = Field(default=32000, gt=0)  # the prompt's token budget
    timeout: float = Field(default=120.0, gt=0)  # seconds per request
    retries: int = Field(default=4, ge=0)
    max_cost_usd: float | None = Field(default=None, gt=0)  # ends the run when reached
    max_total_tokens: int | None = Field(default=None, gt=0)  # ends the run when reached
    prices: dict[str, tuple[float, float]] = {}  # model -> (USD per 1M input, per 1M output)
    # agent
    agent: Literal["claude", "codex", "aider", "command"] = "claude"
    command: str | None = None  # for agent = "command": uses {prompt_file} and {workdir}
    agent_timeout: float = Field(default=900.0, gt=0)
    max_failures: int = Field(default=5, ge=1)  # proposal failures in a row that end the run


class ExecuteSpec(_Section):
    """Where experiments run: how many at once, and on what (this machine, or a Ray cluster).

    ``backend = "ray"`` sends each sample to a Ray cluster at ``address``
    (else ``RAY_ADDRESS``; neither: a Ray started on this machine); the
    ledger and git stay with the ``ratchet run`` that drives it.
    """

    workers: int | Literal["auto"] = Field(default=1)
    backend: Literal["local", "ray"] = "local"
    address: str | None = Field(default=None, min_length=1)

    @field_validator("workers")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("workers must be at least 1 (or \"auto\")")
        return value


class ResourcesSpec(_Section):
    """What one experiment needs (``[resources]``); each worker gets its own share.

    ``cpus``: CPUs per experiment, pinned by affinity and told to thread pools
    (``OMP_NUM_THREADS``...); None shares every CPU without pinning. ``gpus``:
    GPUs per experiment, given through ``CUDA_VISIBLE_DEVICES``. ``memory_mb``:
    the memory one experiment may use; it caps ``[run] max_memory_mb`` and
    bounds how many workers ``--workers auto`` starts. See ``execute.resources``.

    ``custom``: Ray's custom resources per experiment (``{"a100" = 1}``: only
    nodes started with ``--resources '{"a100": 8}'`` take it); Ray backend only.
    """

    cpus: int | None = Field(default=None, ge=1)
    gpus: int = Field(default=0, ge=0)
    memory_mb: float | None = Field(default=None, gt=0)
    custom: dict[str, float] = {}

    @field_validator("custom")
    @classmethod
    def _positive_amounts(cls, custom: dict[str, float]) -> dict[str, float]:
        for name, amount in custom.items():
            if not amount > 0:
                raise ValueError(f"custom resource {name!r} must be a positive amount")
        return custom


class _StudyFile(_Section):
    """The TOML document as written; turned into a ``Study`` after path checks."""

    study: StudySection
    files: FilesSpec
    run: RunPhase
    evaluate: EvaluatePhase | None = None
    metric: MetricSpec
    decision: DecisionSpec = DecisionSpec()
    prune: PruneSpec = PruneSpec()
    confirm: ConfirmSpec | None = None
    proposer: ProposerSpec = ProposerSpec()
    search: SearchSpec = SearchSpec()
    execute: ExecuteSpec = ExecuteSpec()
    resources: ResourcesSpec = ResourcesSpec()

    @model_validator(mode="before")
    @classmethod
    def _run_budget_without_command(cls, data: object) -> object:
        """Without a run command, ``[run] budget`` may be left out: the evaluate phase's."""
        if not isinstance(data, dict):
            return data
        run, evaluate = data.get("run"), data.get("evaluate")
        if isinstance(run, dict) and "command" not in run and "budget" not in run:
            if isinstance(evaluate, dict):
                data = {**data, "run": {**run, "budget": evaluate.get("budget", 60.0)}}
        return data

    @field_validator("files")
    @classmethod
    def _relative_globs(cls, files: FilesSpec) -> FilesSpec:
        for pattern in [*files.editable, *files.protected, *files.context]:
            path = PurePosixPath(pattern)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"pattern {pattern!r} must be relative to the study directory")
        return files


class Study(BaseModel):
    """A loaded, validated study: its directory plus every section of ratchet.toml."""

    model_config = ConfigDict(frozen=True)

    root: Path
    name: str
    program: str
    editable: tuple[str, ...]
    protected: tuple[str, ...]
    context: tuple[str, ...] = ()
    run: RunPhase
    evaluate: EvaluatePhase | None
    metric: MetricSpec
    decision: DecisionSpec
    prune: PruneSpec
    confirm: ConfirmSpec | None = None
    proposer: ProposerSpec  # the first [[proposer]] table when there are several
    search: SearchSpec = SearchSpec()
    execute: ExecuteSpec = ExecuteSpec()
    resources: ResourcesSpec = ResourcesSpec()
    members: tuple[ProposerSpec, ...] = ()  # the [[proposer]] tables; () with one [proposer]

    @property
    def proposers(self) -> tuple[ProposerSpec, ...]:
        """Every configured proposer: the ``[[proposer]]`` tables, else the one ``[proposer]``."""
        return self.members or (self.proposer,)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    def is_editable(self, path: str) -> bool:
        """True when ``path`` (relative, POSIX) matches an editable glob (its regions, for a
        ``:EVOLVE-BLOCK`` pattern) and no protected or context one."""
        return (
            matches(path, _globs(self.editable))
            and not self.is_protected(path)
            and not self.is_context(path)
        )

    def is_context(self, path: str) -> bool:
        """A read-only ``[files] context`` file: shown to proposers, never edited."""
        return matches(path, self.context)

    def context_files(self, root: Path | None = None) -> list[str]:
        """Context files that exist under ``root`` (default: the study directory)."""
        return _expand(root or self.root, self.context)

    def is_protected(self, path: str) -> bool:
        """ratchet.toml and the program are always protected, whatever the globs say."""
        return path in (CONFIG_NAME, self.program) or matches(path, self.protected)

    def editable_files(self, root: Path | None = None) -> list[str]:
        """Editable files that exist under ``root`` (default: the study directory)."""
        return _expand(root or self.root, self.editable)

    def protected_files(self, root: Path | None = None) -> list[str]:
        """Protected files that exist under ``root``, ratchet.toml and the program included."""
        base = root or self.root
        fixed = [p for p in (CONFIG_NAME, self.program) if (base / p).is_file()]
        return sorted(set(fixed) | set(_expand(base, self.protected)))


def matches(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Glob match of a study-relative POSIX path, anchored at the study root.

    ``train.py`` is the top-level file only (never ``sub/train.py`` or
    ``-rf/train.py``); ``*`` and ``?`` stay within one path component, so
    ``src/*.py`` is one level deep; a ``**`` component crosses any number of
    directories (none included). The same files ``Path.glob`` finds, so what
    is listed as editable and what a proposal may edit agree.
    """
    parts = path.split("/")
    return any(_match_parts(parts, _components(pattern)) for pattern in patterns)


def _components(pattern: str) -> list[str]:
    """``./src//*.py`` is ``src/*.py``, as ``Path.glob`` reads it."""
    return [part for part in pattern.split("/") if part not in ("", ".")]


def _match_parts(parts: list[str], pattern: list[str]) -> bool:
    """Component-by-component match; ``**`` is tried at every depth (no recursion)."""
    states = {0}  # how many pattern components the path's prefix has matched, each way
    for part in parts:
        states = _closure(states, pattern)
        states = {
            i + 1 if pattern[i] != "**" else i
            for i in states
            if i < len(pattern) and (pattern[i] == "**" or fnmatch.fnmatchcase(part, pattern[i]))
        }
        if not states:
            return False
    return len(pattern) in _closure(states, pattern)


def _closure(states: set[int], pattern: list[str]) -> set[int]:
    """Add the states reached by letting each ``**`` match no component at all."""
    done = set(states)
    for i in sorted(states):
        while i < len(pattern) and pattern[i] == "**":
            i += 1
            done.add(i)
    return done


def _globs(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """The globs of ``patterns``, a ``:EVOLVE-BLOCK`` suffix taken off (``regions``)."""
    from .proposers.regions import split_pattern  # proposers/ imports this module

    return [split_pattern(pattern)[0] for pattern in patterns]


def _expand(root: Path, patterns: tuple[str, ...] | list[str]) -> list[str]:
    found: set[str] = set()
    for pattern in _globs(patterns):
        for hit in root.glob(pattern):
            if hit.is_file() and ".ratchet" not in hit.relative_to(root).parts:
                found.add(hit.relative_to(root).as_posix())
    return sorted(found)


def load_study(directory: Path) -> Study:
    """Read ``DIR/ratchet.toml``, validate it, and check its globs against the files."""
    root = directory.resolve()
    path = root / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"{path} not found — run `ratchet init {directory}` or pass the study directory"
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        if _mixes_proposer_tables(text):
            raise ConfigError(
                f"{path}: [proposer] and [[proposer]] are both used — keep one form: a single"
                " [proposer] table, or one [[proposer]] table per proposer of an ensemble"
            ) from None
        raise ConfigError(f"{path}: invalid TOML ({exc}) — fix the syntax") from None
    members = _proposer_tables(path, data)
    if members:
        data = {key: value for key, value in data.items() if key != "proposer"}
    try:
        parsed = _StudyFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    if "weight" in parsed.proposer.model_fields_set:
        raise ConfigError(
            f"{path}: [proposer] weight only applies to an ensemble — drop it, or write one"
            " [[proposer]] table per proposer, each with its weight"
        )
    study = Study(
        root=root,
        name=parsed.study.name,
        program=parsed.study.program,
        editable=tuple(parsed.files.editable),
        protected=tuple(parsed.files.protected),
        context=tuple(parsed.files.context),
        run=parsed.run,
        evaluate=parsed.evaluate,
        metric=parsed.metric,
        decision=parsed.decision,
        prune=parsed.prune,
        confirm=parsed.confirm,
        proposer=members[0] if members else parsed.proposer,
        search=parsed.search,
        execute=parsed.execute,
        resources=parsed.resources,
        members=tuple(members),
    )
    _check_phases(path, study)
    _check_files(path, study)
    _check_constraints(path, study)
    return study


def _mixes_proposer_tables(text: str) -> bool:
    """Both ``[proposer]`` and ``[[proposer]]`` headers (TOML refuses it, cryptically)."""
    single = re.search(r"^\s*\[\s*proposer\s*\]", text, re.MULTILINE)
    array = re.search(r"^\s*\[\[\s*proposer\s*\]\]", text, re.MULTILINE)
    return bool(single and array)


def _proposer_tables(path: Path, data: dict) -> list[ProposerSpec]:
    """The ``[[proposer]]`` tables, validated one by one (empty with a ``[proposer]`` table).

    Each member names itself in the ledger: by its kind, or by ``name`` when two
    members share a kind (two models, say), so the bandit can tell them apart.
    """
    tables = data.get("proposer")
    if not isinstance(tables, list):
        return []
    if not tables:
        raise ConfigError(f"{path}: proposer = [] names no proposer — add a [[proposer]] table")
    members: list[ProposerSpec] = []
    for number, table in enumerate(tables, 1):
        label = f"[[proposer]] table {number}"
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {label} is not a table — write [[proposer]] kind = ...")
        try:
            members.append(ProposerSpec.model_validate(table))
        except ValidationError as exc:
            raise ConfigError(_describe(path, exc, label=label)) from None
    names = [m.name or m.kind for m in members]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"{path}: two [[proposer]] tables are both named {name!r} — give each its"
                ' own name, e.g. name = "llm-small" and name = "llm-large"'
            )
    return members


def _check_constraints(path: Path, study: Study) -> None:
    """A constraint that does not parse fails here, before anything runs."""
    from .constraints import parse_constraints

    try:
        parse_constraints(study.metric.constraints)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_phases(path: Path, study: Study) -> None:
    """A run command unless [evaluate] runs the candidate; declared inputs for fixed phases."""
    if study.run.command is None and study.evaluate is None:
        raise ConfigError(
            f"{path}: missing key [run] command — add it (e.g. command = \"python train.py\");"
            " it may be left out only when [evaluate] runs the candidate itself"
        )
    for section, spec in (("evaluate", study.evaluate), ("confirm", study.confirm)):
        if spec is not None and spec.inputs is None:
            raise ConfigError(
                f"{path}: missing key [{section}] inputs — list the files the run phase leaves"
                f" for the {section} command, e.g. inputs = [\"coefficients.json\"], or"
                " inputs = [] when it needs nothing but ratchet.evaluation.load_candidate"
                f" (the {section} command runs in a sealed directory and sees nothing else)"
            )


def _check_files(path: Path, study: Study) -> None:
    for pattern in study.editable:
        if not _expand(study.root, [pattern]):
            raise ConfigError(
                f"{path}: [files] editable pattern {pattern!r} matches no file in {study.root}"
                " — fix the pattern or create the file"
            )
    from .proposers.regions import find_regions, is_region_limited

    for name in study.editable_files():
        if study.is_protected(name):
            raise ConfigError(
                f"{path}: {name} is both editable and protected"
                " — remove it from [files] editable or from [files] protected"
            )
        if study.is_context(name):
            raise ConfigError(
                f"{path}: {name} is both editable and a read-only context file"
                " — remove it from [files] editable or from [files] context"
            )
        if is_region_limited(name, study.editable):
            text = (study.root / name).read_text(encoding="utf-8", errors="replace")
            try:
                find_regions(name, text)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    for pattern in study.context:
        if not _expand(study.root, [pattern]):
            raise ConfigError(
                f"{path}: [files] context pattern {pattern!r} matches no file in {study.root}"
                " — fix the pattern or create the file"
            )
    if not (study.root / study.program).is_file():
        raise ConfigError(
            f"{path}: [study] program = {study.program!r} does not exist"
            " — create it (the research strategy for the proposer) or fix the name"
        )


_SECTIONS = (
    "study",
    "files",
    "run",
    "evaluate",
    "metric",
    "decision",
    "prune",
    "confirm",
    "proposer",
    "search",
    "execute",
    "resources",
)
_RESOURCE_HINTS = {
    "cpus": "give a whole number of CPUs per experiment, at least 1 (e.g. cpus = 2),"
    " or leave it out to share every CPU",
    "gpus": "give a whole number of GPUs per experiment, 0 or more (e.g. gpus = 1)",
    "memory_mb": "give the megabytes one experiment may use, above 0 (e.g. memory_mb = 8000),"
    " or leave it out for no limit",
}
_EXAMPLES = {
    "study": 'name = "mystudy"',
    "files": 'editable = ["train.py"]',
    "run": 'command = "python train.py" and budget = 60',
    "metric": 'name = "val_loss" and goal = "minimize"',
}


def _describe(path: Path, exc: ValidationError, label: str = "") -> str:
    """Turn pydantic's first error into one sentence naming the key and the fix.

    ``label``: the table the model was validated from, when it is not the whole
    file (``[[proposer]] table 2``); the error's location is then a key in it.
    """
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    kind = err["type"]
    if label:
        loc = ["", *loc]
    section = loc[0] if loc else ""
    head = label or f"[{section}]"
    key = f"{head} {'.'.join(loc[1:])}".strip() if len(loc) > 1 else head
    if kind == "extra_forbidden" and len(loc) == 1:
        return (
            f"{path}: unknown section [{section}] — remove it"
            f" (known sections: {', '.join(_SECTIONS)})"
        )
    if kind == "extra_forbidden":
        return f"{path}: unknown key {key} — remove it or check its spelling"
    if kind == "missing" and len(loc) == 1:
        example = _EXAMPLES.get(section, "its required keys")
        return f"{path}: missing section [{section}] — add it with {example}"
    if kind == "missing":
        return f"{path}: missing key {key} — add it"
    if kind in ("greater_than", "greater_than_equal") and loc[-1] in ("budget", "grace"):
        bound = "a positive" if kind == "greater_than" else "a non-negative"
        return (
            f"{path}: {key} must be {bound} number of seconds, got {err.get('input')!r}"
            f" — set e.g. {loc[-1]} = {60 if loc[-1] == 'budget' else 5}"
        )
    if section == "resources" and len(loc) == 2 and loc[1] in _RESOURCE_HINTS:
        return f"{path}: {key} = {err.get('input')!r} is not allowed — {_RESOURCE_HINTS[loc[1]]}"
    if kind in ("greater_than", "finite_number", "float_parsing", "float_type") and loc[-1] == (
        "weight"
    ):
        return (
            f"{path}: {key} must be a positive number, got {err.get('input')!r} — weights are"
            " relative: weight = 2 starts with twice the expected keep rate of weight = 1"
        )
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{path}: {key} = {err.get('input')!r} is not allowed — use one of {expected}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{path}: {key}: {message} (got {err.get('input')!r}) — fix the value"
