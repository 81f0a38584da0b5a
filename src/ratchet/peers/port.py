"""Turn an OpenEvolve or ShinkaEvolve example directory into a Ratchet study.

The peer's files are copied unchanged: the initial program becomes the one
editable file, the evaluator and everything else stay protected, and a
generated protected wrapper (``ratchet_evaluate.py``, see its docstring)
runs the evaluator, through ``ratchet_peer_run.py``, in the harness's
separate sandboxed process (``load_candidate``) within the sealed evaluate
phase, and reports the metric on Ratchet's private channel. A ``shim/`` package
answers the evaluator's imports of the peer's own package, which Ratchet
never installs. When the program has EVOLVE-BLOCK markers, the editable
pattern is ``program:EVOLVE-BLOCK``: a change outside the block is rejected
before it runs; without markers the whole program is editable.

Reading the source (``inspect_source``, ``study_files``) is pure apart from
file reads; ``port`` writes.
"""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..proposers.regions import find_regions

WRAPPER = "ratchet_evaluate.py"
RUNNER = "ratchet_peer_run.py"
SETTINGS = "ratchet_peer.json"
FILES = Path(__file__).resolve().parent / "files"
DEFAULT_BUDGET = 300.0  # seconds: OpenEvolve's default evaluator timeout (0.4.0)


@dataclass(frozen=True)
class Peer:
    """What a peer's example directory holds and what its evaluator must define."""

    name: str
    title: str
    program: str
    evaluator: str
    function: str
    signature: str


PEERS = {
    "openevolve": Peer(
        "openevolve", "OpenEvolve", "initial_program.py", "evaluator.py", "evaluate",
        "evaluate(program_path)",
    ),
    "shinka": Peer(
        "shinka", "ShinkaEvolve", "initial.py", "evaluate.py", "main",
        "main(program_path, results_dir)",
    ),
}


@dataclass(frozen=True)
class Source:
    """What was read from the peer's directory."""

    peer: Peer
    root: Path
    files: list[str]
    system_message: str
    budget: float
    max_iterations: int | None
    base_url: str | None
    model: str | None
    regions: bool = False  # the program has EVOLVE-BLOCK markers: only the block is editable


def inspect_source(peer_name: str, root: Path) -> Source:
    """Check the peer's directory and read its config; ConfigError (one sentence) when unusable."""
    peer = PEERS[peer_name]
    if not root.is_dir():
        raise ConfigError(
            f"--from {peer_name}: {root} is not a directory — give the example's folder"
        )
    for name in (peer.program, peer.evaluator):
        if not (root / name).is_file():
            raise ConfigError(
                f"--from {peer_name}: {root / name} is missing — a {peer.title} example holds"
                f" {peer.program} and {peer.evaluator}"
            )
    _check_function(peer, root / peer.evaluator)
    config = _read_config(root / "config.yaml", peer_name)
    prompt = config.get("prompt") if isinstance(config.get("prompt"), dict) else {}
    evaluator = config.get("evaluator") if isinstance(config.get("evaluator"), dict) else {}
    llm = config.get("llm") if isinstance(config.get("llm"), dict) else {}
    models = llm.get("models") if isinstance(llm.get("models"), list) else []
    model = llm.get("primary_model") or next(
        (m.get("name") for m in models if isinstance(m, dict) and m.get("name")), None
    )
    timeout = evaluator.get("timeout")
    iterations = config.get("max_iterations")
    program = (root / peer.program).read_text(encoding="utf-8", errors="replace")
    return Source(
        peer=peer,
        root=root,
        files=_source_files(root),
        system_message=str(prompt.get("system_message") or "").strip(),
        budget=float(timeout) if _positive(timeout) else DEFAULT_BUDGET,
        max_iterations=iterations if isinstance(iterations, int) and iterations > 0 else None,
        base_url=llm.get("api_base") if isinstance(llm.get("api_base"), str) else None,
        model=str(model) if model else None,
        regions=bool(find_regions(peer.program, program)),
    )


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _check_function(peer: Peer, path: Path) -> None:
    """The evaluator must define its entry function at top level (read, never imported)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--from {peer.name}: {path} is not valid Python ({exc})") from None
    defined = {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if peer.function not in defined:
        raise ConfigError(
            f"--from {peer.name}: {path} defines no function {peer.function}() — a {peer.title}"
            f" evaluator needs {peer.signature}"
        )


def _read_config(path: Path, peer_name: str) -> dict:
    if not path.is_file():
        return {}
    import yaml  # only when there is a config to read

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--from {peer_name}: {path} is not readable YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def _source_files(root: Path) -> list[str]:
    """Every file of the example, relative; caches, dotfiles and peer output folders left out."""
    skip = {"__pycache__", "openevolve_output", "results"}
    found = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
    return sorted(
        f.as_posix()
        for f in found
        if not skip.intersection(f.parts) and not any(part.startswith(".") for part in f.parts)
    )


def _shim_files(peer: Peer) -> list[str]:
    base = FILES / "shim"
    return sorted(p.relative_to(FILES).as_posix() for p in (base / peer.name).rglob("*.py"))


def study_files(source: Source, metric: str) -> dict[str, str]:
    """The generated files of the study (name -> text), beside the copied ones (pure)."""
    peer = source.peer
    copied = [f for f in source.files if f != peer.program]
    generated = [WRAPPER, RUNNER, SETTINGS, *_shim_files(peer)]
    settings = {"peer": peer.name, "evaluator": peer.evaluator, "program": peer.program,
                "metric": metric}
    return {
        "ratchet.toml": _toml(source, metric, sorted(set(copied + generated))),
        "program.md": _program(source, metric),
        "README.md": _readme(source, metric),
        SETTINGS: json.dumps(settings, indent=2) + "\n",
    }


def _q(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string for these characters


def _toml(source: Source, metric: str, protected: list[str]) -> str:
    peer = source.peer
    protected_list = ",\n".join(f"    {_q(p)}" for p in protected)
    llm = ['# kind = "llm"                # the endpoint of the config.yaml, if any:']
    llm += [f"# base_url = {_q(source.base_url)}"] if source.base_url else []
    llm += [f"# model = {_q(source.model)}"] if source.model else []
    return "\n".join([
        "[study]",
        f"name = {_q(source.root.resolve().name or peer.name)}",
        'program = "program.md"',
        "",
        "[files]",
        f"editable = [{_q(peer.program + (':EVOLVE-BLOCK' if source.regions else ''))}]",
        f"protected = [\n{protected_list},\n]",
        "",
        "[run]                           # no command: the evaluator runs the program itself",
        "",
        f"[evaluate]                      # {peer.title}'s evaluator, unmodified, via {WRAPPER}",
        f"command = {_q('python ' + WRAPPER)}",
        f"budget = {source.budget:g}",
        f"inputs = [{_q(peer.program)}]",
        "",
        "[metric]",
        f"name = {_q(metric)}",
        'goal = "maximize"',
        "",
        "[decision]",
        'rule = "strict"',
        "",
        "[proposer]",
        'kind = "mutate"                 # offline; for a language model instead:',
        *llm,
        "",
    ])


def _program(source: Source, metric: str) -> str:
    peer = source.peer
    message = source.system_message or (
        f"Improve {peer.program} so that {peer.evaluator} scores it higher."
    )
    return f"""# Research program (ported from {peer.title})

{message}

## What you may change

- `{peer.program}`, the only editable file{_region_rule(source)}

## What you must not change

- `{peer.evaluator}` (the {peer.title} evaluator, unmodified), `{WRAPPER}`,
  `{RUNNER}`, `{SETTINGS}`, `shim/`, `ratchet.toml` and this file.

## How the evaluation judges

`{WRAPPER}` runs `{peer.signature}` of `{peer.evaluator}` in a separate
process and reports `{metric}` (higher is better).
{_judging(peer)}
"""


def _region_rule(source: Source) -> str:
    if source.regions:
        return (": only the code between its `EVOLVE-BLOCK-START` and\n"
                "  `EVOLVE-BLOCK-END` markers; a change outside them is rejected before it runs.")
    return "; all of it may change."


def _region_note(source: Source) -> str:
    if source.regions:
        return "Only the EVOLVE-BLOCK of the program is editable (a change outside is rejected)."
    return "The program has no EVOLVE-BLOCK markers: all of it is editable."


def _judging(peer: Peer) -> str:
    if peer.name == "shinka":
        return ("A `correct.json` with `\"correct\": false` makes the candidate `rejected`\n"
                "with its error; a crash or a missing metric is a `crash`.")
    return ("An answer with a non-empty `error` string makes the candidate `rejected`;\n"
            "an exception or a missing metric is a `crash`.")


def _readme(source: Source, metric: str) -> str:
    peer = source.peer
    runs = source.max_iterations or 10
    return f"""# {source.root.resolve().name} (ported from {peer.title})

Made by `ratchet init --from {peer.name}`. The {peer.title} files are unchanged:
`{peer.program}` is the editable program, `{peer.evaluator}` the evaluator.
`{WRAPPER}` (generated, protected) runs the evaluator in a separate sandboxed
process of Ratchet's sealed evaluate phase (via `{RUNNER}`) and reports
`{metric}` on Ratchet's private channel; `shim/` stands in for the
`{peer.name}` package the evaluator imports.
{_region_note(source)}

    git add -A && git commit -m "port from {peer.title}"
    ratchet run . --max-experiments {runs}
"""


def port(peer_name: str, source_dir: Path, target: Path, metric: str) -> Source:
    """Write the study into ``target`` (which must not hold any of its files); return the source."""
    source = inspect_source(peer_name, source_dir)
    generated = study_files(source, metric)
    shims = _shim_files(source.peer)
    names = [*source.files, *generated, WRAPPER, RUNNER, *shims]
    clash = [n for n in names if (target / n).exists()]
    if clash:
        raise ConfigError(f"{target / clash[0]} already exists — choose an empty directory")
    if source.root.resolve() == target.resolve():
        raise ConfigError("the study directory must differ from the example directory")
    for name in source.files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.root / name, target / name)
    for name in [WRAPPER, RUNNER, *shims]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FILES / name, target / name)
    for name, text in generated.items():
        (target / name).write_text(text, encoding="utf-8")
    return source
