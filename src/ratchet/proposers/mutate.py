"""The embedded offline proposer: perturb numeric hyperparameters.

``MutateProposer`` needs no network and no key, so every study can run out
of the box. It reads the editable Python files with ``ast``, finds the
numeric literals that look like hyperparameters, and changes one to three of
them by a small multiplicative factor (floats) or step (ints).

Decisions worth knowing:

- **Only the literal's text changes.** Each literal is replaced at its exact
  source span, so comments and formatting survive and the diff is one token.
- **Structural literals are left alone**: subscripts and slices, ``range()``
  arguments, the ints 0 and 1 (except an UPPERCASE module constant of 1),
  exponents, ``%``/``//``/bit operands, hex/octal/binary ints, decorators,
  annotations, f-strings, ``print``/``round``/``seed``-like calls, keywords
  like ``axis``, and all under ``if __name__ == "__main__"``. Module-level
  assignments, keyword arguments and function defaults are drawn most often.
- **A line can opt out**: literals on a line whose comment says
  ``ratchet: fixed`` are never touched (e.g. the domain an evaluation fixes).
- **The sign never changes**: factors are positive, and an int's magnitude
  never drops below 1. A zero hyperparameter (``WEIGHT_DECAY = 0.0``) first
  moves to a small positive value (1e-4..1e-1; 1 or 2 for an int).
- **Steps are continuous**: a float is multiplied by ``exp(s * z)`` with
  ``z`` a standard normal draw, so the proposer never runs out of values;
  an int moves by the rounded factor and at least by one; a power of two of
  8 or more moves to other powers of two. Momentum-like decimals (0.9, or
  a ``momentum``/``beta`` name from 0.5) are scaled through their distance
  to 1, so 0.9 becomes 0.95 or 0.8, never 1.35.
- **Memory lives in the ledger**: every proposal stores its changes in
  ``Proposal.meta["changes"]``; statistics are rebuilt from
  ``Context.history`` on each call. Values already tried *from the same
  parent commit* are not proposed again; a new parent (a keep, or a commit
  from ``ratchet try``) starts with a clean slate.
- **Adaptation follows the 1/5th success rule per literal**: a keep widens
  the literal's step scale ``s`` (x1.5) and sets its preferred direction,
  each failure narrows it (x0.9); kept literals are drawn more often.
- **Regions**: with ``[files] editable = ["prog.py:EVOLVE-BLOCK"]`` only the
  literals between the ``EVOLVE-BLOCK`` markers are candidates.
- **Nothing to change ends the run**: code with no numeric literal at all
  raises ``ProposalsExhausted`` (one sentence, the loop stops cleanly).
- **Deterministic**: the random stream is seeded from ``Context.seed`` and
  the history length, so equal contexts give equal proposals.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ratchet.errors import ProposalError, ProposalsExhausted
from ratchet.models import BROKE, RAN, ROUTINE, Context, Experiment, Goal, Proposal, better

from .regions import allowed_lines

__all__ = [
    "MutateProposer",
    "Literal",
    "Candidate",
    "find_literals",
    "editable_literals",
    "perturb",
    "format_number",
    "rewrite",
]

_START_SIGMA = 0.5  # ln units: a typical first step is x1.4, one in three beyond x1.6
_MIN_SIGMA, _MAX_SIGMA = 0.05, 1.2  # a typical step from x1.05 to x3.3 (x11 at two sigma)
_GROW, _SHRINK = math.exp(0.4), math.exp(-0.1)  # the 1/5th rule: balanced at one keep in five
_RATE_NAME = re.compile(r"momentum|beta|ema|rho", re.IGNORECASE)
_TIER_WEIGHT = {"hyper": 1.0, "assign": 0.5, "other": 0.2}
_COUNT_WEIGHTS = (0.6, 0.25, 0.15)  # one change most often, sometimes two or three
_PREFERRED = 0.75  # chance of stepping in the direction that was kept last

_SKIP_CALLS = frozenset(
    "range print round len enumerate zip isinstance exit quit sleep seed manual_seed getenv"
    " reshape view transpose permute squeeze unsqueeze split chunk flatten format".split()
)
_SKIP_KEYWORDS = frozenset(
    "axis dim indent ndigits maxsplit flush file keepdim keepdims stacklevel seed port"
    " random_state verbose num_workers n_jobs timeout exist_ok protocol level".split()
)
_SKIP_BINOPS = (ast.Mod, ast.FloorDiv, ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor)
_PRAGMA = b"ratchet: fixed"  # a comment that puts a line's literals off limits
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

Chain = tuple[tuple[ast.AST, str], ...]


# --- finding literals ---------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A perturbable numeric literal: its span (``col``/``end_col`` are UTF-8 byte
    offsets, as ``ast`` gives them) and its tier (``hyper``, ``assign``, ``other``)."""

    path: str
    name: str
    line: int
    col: int
    end_col: int
    text: str
    value: float
    is_int: bool
    tier: str

    @property
    def key(self) -> tuple[str, str, int]:
        """The location that memory is keyed on: (path, name, line)."""
        return (self.path, self.name, self.line)


def find_literals(path: str, source: str) -> list[Literal]:
    """The perturbable numeric literals of one file, in order (none if it does not parse)."""
    lines = source.encode("utf-8").splitlines(keepends=True)
    try:
        tree = ast.parse(source)
        found = [
            lit for node, chain in _walk(tree, ()) if (lit := _literal(path, lines, node, chain))
        ]
    except (SyntaxError, ValueError, RecursionError):
        return []
    return _disambiguate(found)


def _walk(node: ast.AST, chain: Chain) -> Iterator[tuple[ast.AST, Chain]]:
    """Yield every node with its ancestors as (parent, field) pairs, root first."""
    for name, value in ast.iter_fields(node):
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                link = (*chain, (node, name))
                yield child, link
                yield from _walk(child, link)


def _number(node: ast.AST) -> float | int | None:
    """The value of an int/float literal, a negative one included (bools excluded)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if isinstance(node.operand, ast.Constant) and inner is not None else None
    return None


def _literal(path: str, lines: list[bytes], node: ast.AST, chain: Chain) -> Literal | None:
    """Build a ``Literal`` for ``node`` unless it is not a number or is structural.

    The constant inside ``-3`` is skipped: the unary minus around it is the
    literal. Ints 0 and 1 are structural, except ``NUM_LAYERS = 1`` (an
    UPPERCASE module constant). A zero is a hyperparameter only in a
    hyperparameter position (``WEIGHT_DECAY = 0.0``, ``dropout=0.0``; for an
    int, an UPPERCASE constant like ``WARMUP = 0``).
    """
    value, parent = _number(node), chain[-1][0] if chain else None
    negated = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)
    if value is None or negated or _structural(chain):
        return None
    if node.lineno != node.end_lineno or _PRAGMA in lines[node.lineno - 1]:
        return None
    text = lines[node.lineno - 1][node.col_offset : node.end_col_offset].decode("utf-8")
    if not _plain_text(text, value):
        return None
    name, tier = _naming(node, chain)
    if isinstance(value, int) and abs(value) <= 1 and not (tier == "hyper" and name.isupper()):
        return None
    if value == 0 and (tier != "hyper" or text.startswith("-")):
        return None
    lit = (path, name, node.lineno, node.col_offset, node.end_col_offset, text, value)
    return Literal(*lit, is_int=isinstance(value, int), tier=tier)


def _plain_text(text: str, value: float) -> bool:
    """True for decimal literals whose text reads back as ``value`` (not hex, octal, binary)."""
    if text.lstrip("- ")[:2].lower() in ("0x", "0o", "0b"):
        return False
    try:
        return ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        return False


def _structural(chain: Chain) -> bool:
    """True when any ancestor makes the literal structural rather than a hyperparameter."""
    return any(_structural_link(parent, name) for parent, name in chain)


def _structural_link(parent: ast.AST, name: str) -> bool:
    """One ancestor test of ``_structural``."""
    if isinstance(parent, ast.Subscript) and name == "slice":
        return True
    if isinstance(parent, (ast.Slice, ast.JoinedStr, ast.Assert, ast.Raise, ast.Delete)):
        return True
    if name in ("decorator_list", "annotation", "returns"):
        return True
    if isinstance(parent, ast.If) and name == "body" and _is_main_guard(parent.test):
        return True
    if isinstance(parent, ast.Call) and name in ("args", "keywords"):
        return _call_name(parent.func).rsplit(".", 1)[-1] in _SKIP_CALLS
    if isinstance(parent, ast.keyword):
        return parent.arg in _SKIP_KEYWORDS
    if isinstance(parent, (ast.BinOp, ast.AugAssign)):
        return isinstance(parent.op, _SKIP_BINOPS) or (
            isinstance(parent.op, ast.Pow) and name in ("right", "value")
        )
    return False


def _is_main_guard(test: ast.AST) -> bool:
    """True for ``__name__ == "__main__"`` (either operand order)."""
    if not (isinstance(test, ast.Compare) and len(test.comparators) == 1):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


def _call_name(func: ast.AST) -> str:
    """Dotted name of a call's function (``np.linspace``), or "" when not a plain name."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        base = _call_name(func.value)
        return f"{base}.{func.attr}" if base else func.attr
    return ""


def _naming(node: ast.AST, chain: Chain) -> tuple[str, str]:
    """The literal's name and tier from its nearest naming ancestor.

    Name: assignment target, keyword, parameter or dict key; else the
    enclosing call; else "literal". Tier: "hyper" for keywords, defaults and
    assignments outside functions, "assign" for assignments inside one.
    """
    child, key, index, call = node, None, None, ""
    for depth in range(len(chain) - 1, -1, -1):
        parent, name = chain[depth]
        if isinstance(parent, ast.Dict) and name == "values" and key is None:
            key = _dict_key(parent, child)
        if isinstance(parent, (ast.List, ast.Tuple)) and name == "elts" and index is None:
            index = (parent, _position(parent.elts, child))
        if isinstance(parent, ast.Call) and not call:
            call = _call_name(parent.func)
        found = _anchor(parent, name, child, chain[:depth], index)
        if found is not None:
            return (key or found[0], found[1])
        child = parent
    return (call or "literal", "other")


def _anchor(
    parent: ast.AST, name: str, child: ast.AST, above: Chain, index: tuple[ast.AST, int] | None
) -> tuple[str, str] | None:
    """Name and tier when ``parent`` names its ``child`` (keyword, default, assignment)."""
    if isinstance(parent, ast.keyword):
        return (_indexed(parent.arg or "kwargs", parent.value, index), "hyper")
    if isinstance(parent, ast.arguments) and name in ("defaults", "kw_defaults"):
        return (_indexed(_parameter(parent, name, child), child, index), "hyper")
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and name == "value":
        target = parent.targets[0] if isinstance(parent, ast.Assign) else parent.target
        in_function = any(isinstance(p, _FUNCTIONS) for p, _ in above)
        return (_target_name(target, parent.value, index), "assign" if in_function else "hyper")
    if isinstance(parent, ast.AugAssign) and name == "value":
        return (_target_name(parent.target, None, None), "other")
    return None


def _indexed(name: str, value: ast.AST, index: tuple[ast.AST, int] | None) -> str:
    """``betas[1]`` when the literal is a direct element of the named tuple or list."""
    return f"{name}[{index[1]}]" if index is not None and index[0] is value else name


def _position(items: list[Any], child: ast.AST) -> int:
    """Index of ``child`` in an AST list, by identity."""
    return next(i for i, item in enumerate(items) if item is child)


def _dict_key(parent: ast.Dict, child: ast.AST) -> str | None:
    """The string key of a dict value, or None."""
    key = parent.keys[_position(parent.values, child)]
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def _parameter(args: ast.arguments, name: str, child: ast.AST) -> str:
    """The parameter a default value belongs to."""
    if name == "kw_defaults":
        return args.kwonlyargs[_position(args.kw_defaults, child)].arg
    positional = [*args.posonlyargs, *args.args]
    offset = len(positional) - len(args.defaults)
    return positional[offset + _position(args.defaults, child)].arg


def _target_name(target: ast.AST, value: ast.AST | None, index: tuple[ast.AST, int] | None) -> str:
    """A readable name for an assignment target (``LR``, ``lr``, ``SIZES[1]``, ``cfg.lr``)."""
    unpacked = isinstance(target, (ast.Tuple, ast.List)) and isinstance(
        value, (ast.Tuple, ast.List)
    )
    if unpacked and index and index[0] is value and len(target.elts) == len(value.elts):
        return _target_name(target.elts[index[1]], None, None)  # a, b = 0.1, 0.2
    if isinstance(target, ast.Name):
        base = target.id
    elif isinstance(target, ast.Attribute):
        base = target.attr
    elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        base = str(target.slice.value)
    else:
        base = ast.unparse(target)[:40]
    return _indexed(base, value, index)


def _disambiguate(found: list[Literal]) -> list[Literal]:
    """Suffix ``#k`` to names that occur more than once on the same line."""
    found = sorted(found, key=lambda lit: (lit.line, lit.col))
    counts = Counter((lit.name, lit.line) for lit in found)
    seen: Counter[tuple[str, int]] = Counter()
    for i, lit in enumerate(found):
        if counts[lit.name, lit.line] > 1:
            seen[lit.name, lit.line] += 1
            found[i] = replace(lit, name=f"{lit.name}#{seen[lit.name, lit.line]}")
    return found


# --- new values ---------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One new value for a literal: direction (+1 bigger magnitude), step size (ln units), text."""

    direction: int
    step: float
    value: float
    text: str


def perturb(lit: Literal, sigma: float, direction: int, rng: random.Random) -> Candidate | None:
    """A new value for ``lit``: a log-normal multiplicative step of scale ``sigma``.

    ``direction`` (+1, -1, or 0 for either) fixes which way the magnitude
    moves. The sign never changes; a zero becomes a small positive number.
    None when the draw rounds back to the old text (the caller draws again).
    """
    size = abs(rng.gauss(0.0, sigma))
    way = direction or rng.choice((1, -1))
    if lit.value == 0:
        text = _from_zero(lit, rng)
    elif lit.is_int:
        text = _int_step(lit, size * way)
    elif _rate_like(lit):
        distance = min((1 - lit.value) * math.exp(-size * way), 0.99)
        text = _decimal(distance, complement=True)
    else:
        text = format_number(lit.value * math.exp(size * way), lit.text)
    value = float(text)
    if text == lit.text or value == lit.value or value * lit.value < 0:
        return None
    moved = 1 if abs(value) > abs(lit.value) else -1
    return Candidate(moved, round(size, 4), value, text)


def _rate_like(lit: Literal) -> bool:
    """Momentum-like decimals move through their distance to 1 (0.9 → 0.95 or 0.8)."""
    rate = lit.value >= 0.9 or (lit.value >= 0.5 and _RATE_NAME.search(lit.name))
    return bool(rate) and lit.value < 1 and "e" not in lit.text.lower()


def _int_step(lit: Literal, log_step: float) -> str:
    """An int scaled by ``exp(log_step)``, moved at least one; powers of two >= 8 stay so.

    A power of two of 8 or more is usually a shape (a width, a head size, a
    batch): it moves to other powers of two so code that divides it still
    works. Never below a magnitude of 1.
    """
    magnitude, sign = abs(int(lit.value)), (1 if lit.value > 0 else -1)
    way = 1 if log_step > 0 else -1
    if magnitude >= 8 and magnitude & (magnitude - 1) == 0:
        power = round(math.log2(magnitude) + log_step / math.log(2))
        power = power if power != math.log2(magnitude) else math.log2(magnitude) + way
        new = 2 ** max(int(power), 0)
    else:
        new = round(magnitude * math.exp(log_step))
        new = new if new != magnitude else magnitude + way
    new = max(new, 1) if new != magnitude else magnitude + 1
    return format_number(sign * max(new, 1), lit.text)


def _from_zero(lit: Literal, rng: random.Random) -> str:
    """A zero hyperparameter's first step: 1 or 2 for an int, 1e-4..1e-1 for a float."""
    if lit.is_int:
        return format_number(rng.choice((1, 2)), lit.text)
    return format_number(10 ** rng.uniform(-4, -1), lit.text)


def format_number(value: float, template: str) -> str:
    """Write ``value`` compactly in the style of ``template`` (``3e-4``, ``0.01``, ``10_000``)."""
    body = abs(value)
    if "." not in template and "e" not in template.lower():
        magnitude = int(round(body))
        text = f"{magnitude:_}" if "_" in template else str(magnitude)
    elif "e" in template.lower():
        text = _scientific(body, "E" if "E" in template else "e")
    else:
        text = _decimal(body)
    return f"-{text}" if value < 0 else text


def _scientific(value: float, mark: str) -> str:
    """``6e-4`` / ``1.5e-3``: three significant digits at most, no padding."""
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}{mark}{int(exponent)}"


def _decimal(value: float, complement: bool = False) -> str:
    """``0.015`` / ``200.0``: 3 significant digits, never scientific; or ``1 - value``."""
    number = Decimal(repr(float(f"{value:.3g}")))
    text = format(Decimal(1) - number if complement else number, "f")
    return text if "." in text else f"{text}.0"


# --- memory: what was tried and what worked ------------------------------------


@dataclass
class Stats:
    """What the history says about one literal: step scale, keeps, preferred direction."""

    sigma: float = _START_SIGMA
    keeps: int = 0
    failures: int = 0  # since the last keep
    direction: int = 0  # of the last keep; 0 when none or stale

    def record(self, direction: int, status: str, steer: bool = True) -> None:
        """Apply one outcome: the 1/5th rule on the step scale, the kept direction remembered
        (when ``steer``: only the changes on the parent's own line of descent steer)."""
        if status == "keep":
            self.sigma = min(self.sigma * _GROW, _MAX_SIGMA)
            self.keeps, self.failures = self.keeps + 1, 0
            self.direction = direction if steer else self.direction
        elif status in RAN:  # ran and was not kept
            self.sigma = max(self.sigma * _SHRINK, _MIN_SIGMA)
            self.failures += 1
            if self.failures >= 3:
                self.direction = 0


@dataclass
class Memory:
    """Values tried from the current parent, and per-location statistics, from history."""

    tried: set[tuple[str, str, int, str]] = field(default_factory=set)
    stats: dict[tuple[str, str, int], Stats] = field(default_factory=dict)


def recorded_changes(experiment: Experiment) -> list[dict[str, Any]]:
    """The well-formed mutate changes stored in an experiment's meta (others ignored)."""
    changes = experiment.meta.get("changes") if isinstance(experiment.meta, dict) else None
    if not isinstance(changes, list):
        return []
    keys = {"path": str, "line": int, "name": str, "old": str, "new": str}
    valid = (c for c in changes if isinstance(c, dict))
    return [c for c in valid if all(isinstance(c.get(k), t) for k, t in keys.items())]


def build_memory(
    history: list[Experiment], parent_commit: str, goal: Goal = "minimize"
) -> Memory:
    """Replay the history, oldest first, into a ``Memory`` for one parent.

    Step statistics learn from the parent's own line of descent: the change
    that made each ancestor (kept ones widen the step and set a direction)
    and every change tried from the parent itself (failures narrow the step;
    a success there widens it but does not steer: that direction already has
    its own node, so a tree coming back to this parent tries something else).
    Under greedy that is the climb's keeps plus the incumbent's discards;
    under a tree policy a node's siblings and cousins do not steer it. A change counts as a
    success when it was kept or beat its own parent's metric. The tried
    values are those proposed from ``parent_commit`` itself, so a new parent
    (a keep, or a commit from ``ratchet try``) starts with a clean slate.
    """
    memory, path = Memory(), _path(history, parent_commit)
    metrics = {e.commit: e.metric for e in history if e.commit and e.status in ROUTINE}
    for experiment in history:
        own = experiment.parent == parent_commit
        if not own and experiment.id not in path:
            continue
        status = _outcome(experiment, metrics.get(experiment.parent), goal)
        for change in recorded_changes(experiment):
            location = (change["path"], change["name"], change["line"])
            if own:
                memory.tried.add((*location, change["new"]))
            old, new = _parse_value(change["old"]), _parse_value(change["new"])
            if old is not None and new is not None and old != new:
                direction = 1 if abs(new) > abs(old) else -1
                steer = experiment.id in path
                memory.stats.setdefault(location, Stats()).record(direction, status, steer)
    return memory


def _path(history: list[Experiment], commit: str) -> set[int]:
    """The ids of the experiments that made ``commit`` and each of its ancestors."""
    makers = {e.commit: e for e in history if e.commit and e.status in (*ROUTINE, *BROKE)}
    path: set[int] = set()
    current = makers.get(commit)
    while current is not None and current.id not in path:
        path.add(current.id)
        current = makers.get(current.parent) if current.parent else None
    return path


def _outcome(experiment: Experiment, parent_metric: float | None, goal: Goal) -> str:
    """``keep`` when kept or better than its parent, else the experiment's own status."""
    metric = experiment.metric
    judged = experiment.status in ("discard", "keep")
    if judged and metric is not None and parent_metric is not None:
        return "keep" if better(metric, parent_metric, goal) else "discard"
    return experiment.status


def _parse_value(text: str) -> float | None:
    """A recorded literal's numeric value, or None when the text is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


# --- the proposer -------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A chosen perturbation of one literal."""

    literal: Literal
    candidate: Candidate
    reason: str

    def as_meta(self) -> dict[str, Any]:
        """The JSON-able record stored in ``Proposal.meta["changes"]``."""
        lit, cand = self.literal, self.candidate
        factor = round(cand.value / lit.value, 6) if lit.value else None
        return {
            "path": lit.path, "line": lit.line, "name": lit.name, "old": lit.text,
            "new": cand.text, "factor": factor, "step": cand.step,
        }  # fmt: skip

    def describe(self) -> str:
        """``lr 3e-4 → 6e-4 (train.py:12)``."""
        lit = self.literal
        return f"{lit.name} {lit.text} → {self.candidate.text} ({lit.path}:{lit.line})"


def editable_literals(files: dict[str, str], editable: Sequence[str] = ()) -> list[Literal]:
    """The literals of the editable Python files, inside their EVOLVE-BLOCK regions if limited."""
    found = []
    for path in sorted(p for p in files if p.endswith(".py")):
        lines = allowed_lines(path, files[path], editable)
        found += [
            lit for lit in find_literals(path, files[path]) if lines is None or lit.line in lines
        ]
    return found


class MutateProposer:
    """Perturbs 1..``max_changes`` numeric hyperparameters of the editable Python files.

    ``editable`` is the study's ``[files] editable`` patterns: a
    ``path:EVOLVE-BLOCK`` pattern limits the literals of that file to its
    regions.
    """

    name = "mutate"

    def __init__(self, max_changes: int = 3, editable: Sequence[str] = ()) -> None:
        if max_changes < 1:
            raise ProposalError(
                f"max_changes must be at least 1 (got {max_changes}) — pass 1, 2 or 3."
            )
        self.max_changes = max_changes
        self.editable = tuple(editable)

    def propose(self, context: Context) -> Proposal:
        """Choose literals and new values, rewrite their spans, and describe the change."""
        literals = editable_literals(context.files, self.editable)
        if not literals:
            names = ", ".join(sorted(context.files)) or "no editable files"
            raise ProposalsExhausted(
                f"mutate has nothing to change: no numeric literal in the editable code ({names})"
                " — use --proposer llm, or give the code numeric hyperparameters."
            )
        memory = build_memory(context.history, context.parent_commit, context.goal)
        rng = random.Random(context.seed * 1_000_003 + len(context.history))
        changes = _choose(literals, memory, rng, self.max_changes)
        return _proposal(context.files, changes)


def _weight(lit: Literal, stats: Stats) -> float:
    """How often to draw a literal: tier, kept before, not failing lately."""
    kept, failing = 1 + 2 * stats.keeps, 0.8 ** min(stats.failures, 6)
    return _TIER_WEIGHT[lit.tier] * kept * failing


def _choose(
    literals: list[Literal], memory: Memory, rng: random.Random, max_changes: int
) -> list[Change]:
    """Draw how many literals, which ones (by weight, no repeats) and their new values."""
    limit = min(max_changes, len(literals), len(_COUNT_WEIGHTS))
    count = rng.choices(range(1, limit + 1), weights=_COUNT_WEIGHTS[:limit])[0]
    remaining, changes = list(literals), []
    stats = {lit.key: memory.stats.get(lit.key) or Stats() for lit in literals}
    while remaining and len(changes) < count:
        lit = rng.choices(remaining, weights=[_weight(x, stats[x.key]) for x in remaining])[0]
        remaining.remove(lit)
        change = _change(lit, stats[lit.key], memory, rng)
        if change is not None:
            changes.append(change)
    if not changes:  # every draw repeated a tried value: step wider, ignoring memory
        lit = rng.choice(literals)
        wide = _change(lit, Stats(sigma=_MAX_SIGMA), Memory(), rng, tries=100)
        changes.append(wide or _force(lit))
    return sorted(changes, key=lambda c: (c.literal.path, c.literal.line, c.literal.col))


def _change(
    lit: Literal, stats: Stats, memory: Memory, rng: random.Random, tries: int = 12
) -> Change | None:
    """A new value not tried from this parent, in the kept direction most of the time."""
    for attempt in range(tries):
        preferred = stats.direction and rng.random() < _PREFERRED
        sigma = stats.sigma * (1 + attempt / 4)  # widen when draws keep repeating
        cand = perturb(lit, sigma, stats.direction if preferred else 0, rng)
        if cand is None or (*lit.key, cand.text) in memory.tried:
            continue
        way = "up" if cand.direction > 0 else "down"
        if stats.direction and cand.direction == stats.direction:
            return Change(lit, cand, f"{lit.name} {way} again, as a kept change did")
        return Change(lit, cand, f"{lit.name} {way}")
    return None


def _force(lit: Literal) -> Change:
    """The last resort when every draw rounded back: double the magnitude."""
    step = math.log(2)
    text = _int_step(lit, step) if lit.is_int else format_number(lit.value * 2 or 1e-3, lit.text)
    return Change(lit, Candidate(1, round(step, 4), float(text), text), f"{lit.name} up")


def _proposal(files: dict[str, str], changes: list[Change]) -> Proposal:
    """Rewrite the chosen spans and wrap everything into a ``Proposal``."""
    edits: dict[str, str] = {}
    for path in sorted({c.literal.path for c in changes}):
        mine = [(c.literal, c.candidate.text) for c in changes if c.literal.path == path]
        edits[path] = rewrite(files[path], mine)
    noun = "literal" if len(changes) == 1 else "literals"
    rationale = (
        f"Offline mutation of {len(changes)} numeric {noun} ("
        + ", ".join(c.reason for c in changes)
        + "); steps grow after keeps and shrink after discards."
    )
    return Proposal(
        description="; ".join(c.describe() for c in changes),
        edits=edits,
        rationale=rationale,
        meta={"proposer": "mutate", "changes": [c.as_meta() for c in changes]},
    )


def rewrite(source: str, replacements: list[tuple[Literal, str]]) -> str:
    """Replace each literal's byte span with its new text, last span first."""
    lines = source.encode("utf-8").splitlines(keepends=True)
    for lit, text in sorted(replacements, key=lambda r: (r[0].line, r[0].col), reverse=True):
        raw = lines[lit.line - 1]
        lines[lit.line - 1] = raw[: lit.col] + text.encode() + raw[lit.end_col :]
    return b"".join(lines).decode("utf-8")
