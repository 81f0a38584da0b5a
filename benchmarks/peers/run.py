"""Ratchet, OpenEvolve and ShinkaEvolve side by side, in one run, on one machine.

    .venv/bin/python benchmarks/peers/run.py [--iterations 15] [--rounds 3] [--write-readme]

Installs ``openevolve==0.4.0`` and ``shinka-evolve==0.0.7`` into their own
virtual environments under ``$XDG_CACHE_HOME/ratchet-peers`` (never into
Ratchet's), starts one scripted OpenAI-compatible server on 127.0.0.1, and
runs every scenario of ``tasks.py`` with every tool, tool after tool within
each scenario so that the machine's load falls on all of them alike. For
each run it measures: the time from launch to the first LLM request
(startup: imports, setup, the initial program's evaluation), the median time
between consecutive LLM requests (the cost of one iteration when the model
answers at once and the evaluation takes no time), the peak memory of the
whole process tree, which processes the hostile code started are still
alive after the tool returned (then kills them), whether the evaluator file
on disk changed, and what the tool recorded for each iteration. It prints
the tables and, with ``--write-readme``, puts them into README.md beside
this file. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from llm_server import ScriptedServer
from proctree import MemorySampler, become_subreaper, kill_and_reap, survivors, uptime
from tasks import SLEEPER_TAG, Scenario, prelude, render, scenarios, valid
from tools import TOOLS, Launch, Tool, make_tools

HERE = Path(__file__).resolve().parent
PEERS = {"openevolve": "openevolve==0.4.0", "shinka": "shinka-evolve==0.0.7"}
RUN_LIMIT_S = 240  # a tool that has not returned by then is killed and reported so


@dataclass
class Outcome:
    tool: str
    scenario: str
    rc: int | None
    wall_s: float
    startup_s: float | None
    intervals_ms: list[float]
    requests: int
    peak_tree_mib: float
    peak_process_mib: float
    left_alive: list[str]
    running_later: list[int]  # per later LLM request: hostile processes still running
    marks: int  # processes the hostile code recorded (0: it never ran, or a sandbox hid them)
    evaluator_changed: bool
    records: list[str] = field(default_factory=list)
    followups: list[str] = field(default_factory=list)  # what repair rounds told the model
    killed_by_harness: bool = False

    @property
    def per_iteration_ms(self) -> float | None:
        return statistics.median(self.intervals_ms) if self.intervals_ms else None


# --- the peers' virtual environments ----------------------------------------------------


def venv_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ratchet-peers"


def ensure_venv(root: Path, name: str, requirement: str) -> None:
    """A venv with exactly ``requirement`` in it; created once, then reused."""
    venv = root / name
    package, version = requirement.split("==")
    probe = [str(venv / "bin" / "python"), "-c",
             f"import importlib.metadata as m; print(m.version({package!r}))"]
    if venv.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == version:
            return
        shutil.rmtree(venv)
    print(f"installing {requirement} into {venv} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         requirement],
        check=True,
    )


# --- one tool on one scenario -----------------------------------------------------------


def run_one(tool: Tool, scenario: Scenario, server: ScriptedServer, base: Path) -> Outcome:
    """One tool on one scenario, from a fresh task directory under ``base``."""
    work = base / scenario.name / tool.name
    while work.exists():  # a later round of the same scenario
        work = work.with_name(work.name + "+")
    marks = work / "marks"
    marks.mkdir(parents=True)
    iterations = len(scenario.answers)
    launch = tool.prepare(work, server.base_url, iterations, scenario.timeout_s)
    original = launch.evaluator.read_text()
    files = {"program": launch.program, "evaluator": launch.evaluator.name}
    fakes = {launch.evaluator.name: launch.fake_evaluator}
    lines = prelude(str(marks), [str(launch.evaluator), launch.evaluator.name], fakes)

    running_later: list[int] = []  # hostile processes alive when the next iteration asks

    def answer(index: int, body: dict) -> str:
        if scenario.group == "b" and index > 0:
            running_later.append(sum(s.marked for s in survivors(marks, SLEEPER_TAG, booted)))
        step = scenario.answers[index] if index < len(scenario.answers) else valid(index + 1)
        return render(step, tool.dialect, files, lines)

    booted = uptime()
    server.reset(answer)
    with MemorySampler() as memory:
        start = time.monotonic()
        rc, killed = _launch(launch, work / "tool.log")
        wall = time.monotonic() - start
    requests = list(server.requests)
    left = survivors(marks, SLEEPER_TAG, booted)
    kill_and_reap(left)
    arrivals = [r.arrived for r in requests]
    return Outcome(
        tool=tool.name,
        scenario=scenario.name,
        rc=rc,
        wall_s=wall,
        startup_s=arrivals[0] - start if arrivals else None,
        intervals_ms=[(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)],
        requests=len(requests),
        peak_tree_mib=memory.peak_tree / 2**20,
        peak_process_mib=memory.peak_process / 2**20,
        running_later=running_later,
        marks=len(list(marks.glob("*"))),
        left_alive=[f"{s.pid} {s.command[:80]}" + (" (marked)" if s.marked else "")
                    for s in left],
        evaluator_changed=launch.evaluator.read_text() != original,
        records=[line.replace(str(base), "$WORK") for line in tool.records(work)],
        followups=[_short(_last_user(r.body)) for r in requests if _is_followup(r.body)],
        killed_by_harness=killed,
    )


def _launch(launch: Launch, log_path: Path) -> tuple[int, bool]:
    """Run the tool to its end (or kill it at RUN_LIMIT_S): (exit code, killed by us)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(launch.env)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(launch.command, cwd=launch.cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            return proc.wait(timeout=RUN_LIMIT_S), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the rest of its tree: survivors() below
            return proc.wait(), True


def _is_followup(body: dict) -> bool:
    """A request that carries an earlier answer: a repair round-trip."""
    return any(m.get("role") == "assistant" for m in body.get("messages", []))


def _last_user(body: dict) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else json.dumps(content)


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- tables -----------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.2f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def cost_table(outcomes: list[Outcome], tools: list[str]) -> str:
    """Task (a): startup, per-iteration cost and memory, each the median over the rounds.

    Ratchet's ratio to each peer is the median of the per-round ratios: both
    figures of a ratio come from the same round, minutes apart at most.
    """
    rounds: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if o.scenario == "trivial":
            rounds.setdefault(o.tool, []).append(o)
    peers = [t for t in tools if t in ("openevolve", "shinka")]
    head = ["", *tools, *(f"ratchet / {p}" for p in peers)]
    rows = [
        ("startup: launch → first LLM request (s)", lambda o: o.startup_s),
        ("per iteration: median between LLM requests (ms)", lambda o: o.per_iteration_ms),
        ("whole run (s)", lambda o: o.wall_s),
        ("peak memory, whole process tree (MiB)", lambda o: o.peak_tree_mib),
        ("peak memory, largest process (MiB)", lambda o: o.peak_process_mib),
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, get in rows:
        values = [_median([get(o) for o in rounds.get(t, [])]) for t in tools]
        ratios = [_median_ratio(rounds.get("ratchet", []), rounds.get(p, []), get) for p in peers]
        out.append("| " + " | ".join([label, *(_fmt(v) for v in values), *ratios]) + " |")
    served = {t: sorted({o.requests for o in rounds[t]}) for t in tools if t in rounds}
    out.append("")
    out.append(f"Median of {max((len(r) for r in rounds.values()), default=0)} rounds; LLM"
               " requests served per round: "
               + ", ".join(f"{t} {'/'.join(map(str, n))}" for t, n in served.items()))
    return "\n".join(out)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _median_ratio(ours: list[Outcome], theirs: list[Outcome], get) -> str:  # noqa: ANN001
    pairs = [(get(a), get(b)) for a, b in zip(ours, theirs, strict=False)]
    ratios = [a / b for a, b in pairs if a and b]
    return f"{statistics.median(ratios):.2f}×" if ratios else "—"


def failure_table(outcomes: list[Outcome], tools: list[str], group: str,
                  names: list[str]) -> str:
    """Tasks (b) and (c): for each scenario, what each tool recorded and left behind."""
    head = ["scenario", *tools]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(o.scenario, o.tool): o for o in outcomes}
    for name in names:
        cells = []
        for t in tools:
            o = by.get((name, t))
            cells.append(_cell(o, group) if o else "—")
        out.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(out)


def _cell(o: Outcome, group: str) -> str:
    parts = ["<br>".join(r.replace("|", "/") for r in o.records[:8]) or "(nothing recorded)"]
    parts += [f"repair prompt: {f.replace('|', '/')}" for f in o.followups]
    marked = sum(1 for s in o.left_alive if s.endswith("(marked)"))
    if group == "b":
        later = max(o.running_later, default=0)
        if o.tool == "ratchet-bwrap":
            parts.append("the sandbox hides the hostile code's marks (own /tmp, own pid"
                         " namespace): see the left-alive count")
        else:
            parts.append(f"hostile code recorded {o.marks} process(es); still running at the"
                         f" next iteration: {later}")
    if group == "b" or o.left_alive:
        parts.append(f"**left alive after exit: {len(o.left_alive)}** ({marked} the hostile"
                     " code's)")
    if o.evaluator_changed:
        parts.append("**evaluator file on disk changed**")
    parts.append(f"exit {o.rc}, {o.wall_s:.1f} s, {o.requests} LLM requests"
                 + (", killed by the harness" if o.killed_by_harness else ""))
    return "<br>".join(parts)


def report(outcomes: list[Outcome], tools: list[str], command: str, load: str) -> str:
    every = scenarios(1)
    b = [s.name for s in every if s.group == "b"]
    c = [s.name for s in every if s.group == "c"]
    hostile = [t for t in tools if t != "ratchet-1phase"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"Measured {date} with `{command}`.",
        f"Load: `{load}` before, on the shared 2-core VM.",
        "",
        "(a) The tool's own cost (trivial program, the model answers at once):",
        "",
        cost_table(outcomes, tools),
        "",
        "(b) Time limits and child processes (limit 5 s; each run: the hostile answer,"
        " then two valid ones):",
        "",
        *(f"- `{s.name}`: {s.what}" for s in every if s.group == "b"),
        "",
        failure_table(outcomes, hostile, "b", b),
        "",
        "(c) Malformed and hostile answers (each run: that answer, then two valid ones):",
        "",
        *(f"- `{s.name}`: {s.what}" for s in every if s.group == "c"),
        "",
        failure_table(outcomes, hostile, "c", c),
    ])


def write_readme(text: str) -> None:
    readme = HERE / "README.md"
    body = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    before, rest = body.split(start, 1)
    after = rest.split(end, 1)[1]
    readme.write_text(f"{before}{start}\n{text}\n{end}{after}")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=15, help="of the trivial task")
    parser.add_argument("--rounds", type=int, default=3, help="of the trivial task")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {TOOLS}")
    parser.add_argument("--scenarios", default="", help="subset by name (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.tools.split(",") if n]
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        parser.error(f"unknown tool {unknown[0]!r} in --tools; choose from {', '.join(TOOLS)}")
    chosen = scenarios(args.iterations)
    if args.scenarios:
        wanted = args.scenarios.split(",")
        chosen = [s for s in chosen if s.name in wanted]

    become_subreaper()
    root = venv_root()
    for name, requirement in PEERS.items():
        if name in names:
            ensure_venv(root, name, requirement)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load before: {load}", flush=True)
    tools = make_tools(root, names)
    base = Path(tempfile.mkdtemp(prefix="ratchet-peers-"))
    outcomes: list[Outcome] = []
    with ScriptedServer(lambda i, body: "") as server:
        plan = [(s, list(tools)) for s in chosen if s.group != "a"]
        for k, s in enumerate(s for s in chosen if s.group == "a"):
            for n in range(args.rounds):  # rotate the order: no tool always runs first
                shift = (k + n) % len(tools)
                plan.insert(n, (s, tools[shift:] + tools[:shift]))
        for scenario, order in plan:
            for tool in order:
                if tool.name == "ratchet-1phase" and scenario.group != "a":
                    continue
                outcome = run_one(tool, scenario, server, base)
                outcomes.append(outcome)
                print(f"{scenario.name:15} {tool.name:15} exit {outcome.rc} "
                      f"{outcome.wall_s:6.1f} s  {outcome.requests:3} requests  "
                      f"left alive {len(outcome.left_alive)}", flush=True)
    (base / "outcomes.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    command = "python benchmarks/peers/run.py " + " ".join(argv or sys.argv[1:])
    text = report(outcomes, names, command.strip(), load)
    print("\n" + text)
    print(f"\nraw figures and logs: {base}/" if args.keep else "")
    if args.write_readme:
        write_readme(text)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
