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
  never drops below 1.
- **Step sizes form a finite ladder** (x1.1 ... x10 for floats; +-1, +-2,
  x1.25 ... x4 for ints), so a small file runs out of untried values and
  the proposer says so instead of looping. Momentum-like decimals (0.9, or
  a ``momentum``/``beta`` name from 0.5) are scaled through their distance
  to 1, so 0.9 becomes 0.95 or 0.8, never 1.35.
- **Memory lives in the ledger**: every proposal stores its changes in
  ``Proposal.meta["changes"]``; the tried (location, value) pairs and the
  per-literal statistics are rebuilt from ``Context.history`` on each call,
  so nothing is repeated after a restart. A location is ``(path, name,
  line)``; the old and the new value of every recorded change count as tried.
- **Adaptation follows the 1/5th success rule per literal**: a keep raises
  the literal's step level by one and sets its preferred direction, each
  failure lowers the level by a quarter; kept literals are drawn more often.
- **Deterministic**: the random stream is seeded from ``Context.seed`` and
  the history length, so equal contexts give equal proposals.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ratchet.errors import ProposalError
from ratchet.models import RAN, Context, Experiment, Proposal

__all__ = ["MutateProposer", "Literal", "Candidate", "find_literals", "candidates", "format_number"]

_LADDER: tuple[float, ...] = (1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)  # step factors, by level
_INT_FACTORS: tuple[float, ...] = (1.25, 1.5, 2.0, 4.0)  # ints also step by +-1 and +-2
_START_LEVEL = 2.5  # between x1.5 and x2: first steps bold enough to matter
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
    UPPERCASE module constant).
    """
    value, parent = _number(node), chain[-1][0] if chain else None
    negated = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)
    if value is None or value == 0 or negated or _structural(chain):
        return None
    if node.lineno != node.end_lineno or _PRAGMA in lines[node.lineno - 1]:
        return None
    text = lines[node.lineno - 1][node.col_offset : node.end_col_offset].decode("utf-8")
    if not _plain_text(text, value):
        return None
    name, tier = _naming(node, chain)
    if isinstance(value, int) and abs(value) == 1 and not (tier == "hyper" and name.isupper()):
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
    """One possible new value for a literal: direction (+1 bigger magnitude), ladder level, text."""

    direction: int
    level: int
    value: float
    text: str


def candidates(lit: Literal) -> list[Candidate]:
    """Every new value the ladder allows for ``lit``: one per distinct value, sign kept."""
    raw = _int_values(lit) if lit.is_int else _float_values(lit)
    found: dict[float, Candidate] = {}
    for level, text in sorted(raw, key=lambda item: item[0]):
        value = float(text)  # float() reads underscores and exponents like the parser
        if value * lit.value > 0 and value != lit.value and value not in found:
            direction = 1 if abs(value) > abs(lit.value) else -1
            found[value] = Candidate(direction, level, value, text)
    return list(found.values())


def _float_values(lit: Literal) -> Iterator[tuple[int, str]]:
    """Multiply or divide by each ladder factor (momentum-like: the distance to 1)."""
    rate = lit.value >= 0.9 or (lit.value >= 0.5 and _RATE_NAME.search(lit.name))
    complement = rate and lit.value < 1 and "e" not in lit.text.lower()
    for level, factor in enumerate(_LADDER):
        for direction in (1, -1):
            if complement:
                yield level, _decimal((1 - lit.value) * factor**-direction, complement=True)
            else:
                yield level, format_number(lit.value * factor**direction, lit.text)


def _int_values(lit: Literal) -> Iterator[tuple[int, str]]:
    """Steps of +-1 and +-2 (small ints only), and scaling by the int factors.

    A power of two of 8 or more is usually a shape (a width, a head size, a
    batch): it only moves to other powers of two, so a change does not break
    the code that divides it. Never below a magnitude of 1.
    """
    magnitude, sign = abs(int(lit.value)), (1 if lit.value > 0 else -1)
    if magnitude >= 8 and magnitude & (magnitude - 1) == 0:
        news = {magnitude * 2, magnitude * 4, magnitude // 2, magnitude // 4}
    else:
        news = {round(magnitude * f**d) for f in _INT_FACTORS for d in (1, -1)}
        if magnitude < 20:
            news |= {magnitude + 1, magnitude - 1, magnitude + 2, magnitude - 2}
    for new in sorted(n for n in news if n >= 1 and n != magnitude):
        yield _nearest_level(new / magnitude), format_number(sign * new, lit.text)


def _nearest_level(ratio: float) -> int:
    """The ladder level whose factor is closest to ``ratio`` (either way) in log scale."""
    size = abs(math.log(ratio))
    return min(range(len(_LADDER)), key=lambda i: abs(size - math.log(_LADDER[i])))


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
    """What the history says about one literal: step level, keeps, preferred direction."""

    level: float = _START_LEVEL
    keeps: int = 0
    failures: int = 0  # since the last keep
    direction: int = 0  # of the last keep; 0 when none or stale

    def record(self, direction: int, status: str) -> None:
        """Apply one outcome: the 1/5th rule on the level, the kept direction remembered."""
        if status == "keep":
            self.level = min(self.level + 1, len(_LADDER) - 1)
            self.keeps, self.failures, self.direction = self.keeps + 1, 0, direction
        elif status in RAN:  # ran and was not kept
            self.level = max(self.level - 0.25, 0.0)
            self.failures += 1
            if self.failures >= 3:
                self.direction = 0


@dataclass
class Memory:
    """Tried (location, value) pairs and per-location statistics, rebuilt from history."""

    tried: set[tuple[str, str, int, float]] = field(default_factory=set)
    stats: dict[tuple[str, str, int], Stats] = field(default_factory=dict)


def recorded_changes(experiment: Experiment) -> list[dict[str, Any]]:
    """The well-formed mutate changes stored in an experiment's meta (others ignored)."""
    changes = experiment.meta.get("changes") if isinstance(experiment.meta, dict) else None
    if not isinstance(changes, list):
        return []
    keys = {"path": str, "line": int, "name": str, "old": str, "new": str}
    valid = (c for c in changes if isinstance(c, dict))
    return [c for c in valid if all(isinstance(c.get(k), t) for k, t in keys.items())]


def build_memory(history: list[Experiment]) -> Memory:
    """Replay the history, oldest first, into a ``Memory``."""
    memory = Memory()
    for experiment in history:
        for change in recorded_changes(experiment):
            location = (change["path"], change["name"], change["line"])
            old, new = _parse_value(change["old"]), _parse_value(change["new"])
            for value in (old, new):
                if value is not None:
                    memory.tried.add((*location, value))
            if old is not None and new is not None:
                direction = 1 if abs(new) > abs(old) else -1
                memory.stats.setdefault(location, Stats()).record(direction, experiment.status)
    return memory


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
        factor = round(cand.value / lit.value, 6)
        return {
            "path": lit.path, "line": lit.line, "name": lit.name, "old": lit.text,
            "new": cand.text, "factor": factor, "step": cand.level,
        }  # fmt: skip

    def describe(self) -> str:
        """``lr 3e-4 → 6e-4 (train.py:12)``."""
        lit = self.literal
        return f"{lit.name} {lit.text} → {self.candidate.text} ({lit.path}:{lit.line})"


class MutateProposer:
    """Perturbs 1..``max_changes`` numeric hyperparameters of the editable Python files."""

    name = "mutate"

    def __init__(self, max_changes: int = 3) -> None:
        if max_changes < 1:
            raise ProposalError(
                f"max_changes must be at least 1 (got {max_changes}) — pass 1, 2 or 3."
            )
        self.max_changes = max_changes

    def propose(self, context: Context) -> Proposal:
        """Choose literals and new values, rewrite their spans, and describe the change."""
        paths = sorted(path for path in context.files if path.endswith(".py"))
        literals = [lit for p in paths for lit in find_literals(p, context.files[p])]
        names = ", ".join(sorted(context.files)) or "no editable files"
        if not literals:
            raise ProposalError(
                f"no numeric literal to perturb in the editable files ({names})"
                " — use --proposer llm or --proposer replay."
            )
        memory = build_memory(context.history)
        pools = _pools(literals, memory)
        if not pools:
            raise ProposalError(
                f"every perturbation of the {len(literals)} numeric literals in {names}"
                " has been tried — use --proposer llm or --proposer replay."
            )
        rng = random.Random(context.seed * 1_000_003 + len(context.history))
        changes = _choose(pools, rng, self.max_changes)
        return _proposal(context.files, changes)


@dataclass(frozen=True)
class _Pool:
    """A literal with its statistics and its untried candidates."""

    literal: Literal
    stats: Stats
    options: list[Candidate]

    @property
    def weight(self) -> float:
        """How often to draw this literal: tier, kept before, not failing lately."""
        kept, failing = 1 + 2 * self.stats.keeps, 0.8 ** min(self.stats.failures, 6)
        return _TIER_WEIGHT[self.literal.tier] * kept * failing


def _pools(literals: list[Literal], memory: Memory) -> list[_Pool]:
    """One pool per literal that still has an untried value."""
    pools = []
    for lit in literals:
        options = [c for c in candidates(lit) if (*lit.key, c.value) not in memory.tried]
        if options:
            pools.append(_Pool(lit, memory.stats.get(lit.key) or Stats(), options))
    return pools


def _choose(pools: list[_Pool], rng: random.Random, max_changes: int) -> list[Change]:
    """Draw how many literals, which ones (by weight, no repeats) and their new values."""
    limit = min(max_changes, len(pools), len(_COUNT_WEIGHTS))
    count = rng.choices(range(1, limit + 1), weights=_COUNT_WEIGHTS[:limit])[0]
    remaining, changes = list(pools), []
    for _ in range(count):
        pool = rng.choices(remaining, weights=[p.weight for p in remaining])[0]
        remaining.remove(pool)
        changes.append(_change(pool, rng))
    return sorted(changes, key=lambda c: (c.literal.path, c.literal.line, c.literal.col))


def _change(pool: _Pool, rng: random.Random) -> Change:
    """Pick a value near the literal's step level, in its preferred direction if it has one."""
    stats = pool.stats

    def weight(cand: Candidate) -> float:
        aligned = _PREFERRED if cand.direction == stats.direction else 1 - _PREFERRED
        return (aligned if stats.direction else 0.5) * math.exp(
            -1.5 * abs(cand.level - stats.level)
        )

    cand = rng.choices(pool.options, weights=[weight(c) for c in pool.options])[0]
    way = "up" if cand.direction > 0 else "down"
    if stats.direction and cand.direction == stats.direction:
        reason = f"{pool.literal.name} {way} again, as a kept change did"
    else:
        reason = f"{pool.literal.name} {way}"
    return Change(pool.literal, cand, reason)


def _proposal(files: dict[str, str], changes: list[Change]) -> Proposal:
    """Rewrite the chosen spans and wrap everything into a ``Proposal``."""
    edits: dict[str, str] = {}
    for path in sorted({c.literal.path for c in changes}):
        edits[path] = _rewrite(files[path], [c for c in changes if c.literal.path == path])
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


def _rewrite(source: str, changes: list[Change]) -> str:
    """Replace each literal's byte span with its new text, last span first."""
    lines = source.encode("utf-8").splitlines(keepends=True)
    for change in sorted(changes, key=lambda c: (c.literal.line, c.literal.col), reverse=True):
        lit = change.literal
        raw = lines[lit.line - 1]
        lines[lit.line - 1] = raw[: lit.col] + change.candidate.text.encode() + raw[lit.end_col :]
    return b"".join(lines).decode("utf-8")
