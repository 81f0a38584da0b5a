"""The agent proposer: a coding-agent CLI is the mutator, Ratchet stays the judge.

Each proposal runs one agent session (Claude Code, Codex, aider, or any
command) inside the candidate worktree, where the loop has just checked out
the parent commit. The agent edits files in place and exits; it never runs or
scores its change. Ratchet then

1. finds what the agent left: every file whose bytes differ from the parent
   commit, new files and deleted files included (a stat snapshot taken before
   the session says where to look; the parent's content says what changed);
2. turns it into the same ``Proposal`` every proposer returns (path relative
   to the study → full new text), so ``verify`` applies the usual policy: an
   edit to a protected or non-editable file rejects the proposal with its
   reason, exactly as for an LLM's answer;
3. resets the worktree to the parent, removing everything the agent wrote
   (untracked and ignored files too), so only the ``edits`` mapping reaches the
   experiment, through the loop's commit.

Decisions worth knowing:

- New files that are neither editable nor protected (scratch notes, caches
  an agent leaves behind) are ignored, not proposed. A changed *tracked*
  non-editable file is proposed, and rejected by the policy.
- A deleted file cannot be expressed as an edit: the proposal is unusable
  (a ``rejected`` row that does not count towards ``max_failures``).
- An agent that exits without changing anything, exits non-zero, or runs
  past ``[proposer] agent_timeout`` has failed: a ``rejected`` row that counts
  towards ``max_failures``, so a misconfigured agent cannot spin all night.
- The one-line description is the first line of ``.ratchet-description`` in
  the study directory (the prompt asks for it), else the agent's last line of
  output. The file never becomes part of a proposal.
- The agent runs with the user's environment (it may need its own API key)
  plus ``RATCHET_PROPOSER=agent``; the experiment never sees the key, since
  every phase runs with the scrubbed environment. ``ratchet try`` refuses to
  run under ``RATCHET_PROPOSER=agent``: here Ratchet runs the experiment.
- Prompt and transcript are kept under ``.ratchet/logs/agent/<tag>-<n>/``;
  the log path is in the ledger row's meta (``agent_log``) and in every
  failure reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ExperimentCrashed, ProposalError, ProposalUnusable
from ..execute.environment import user_environ
from ..execute.phases import last_line
from ..execute.runner import RunResult, RunSpec, run_command
from ..git.repo import Repo
from ..models import ROUTINE, Context, Experiment, Proposal, shown_status
from ..safetext import printable
from ..study import Study

__all__ = [
    "AGENT_ENV",
    "DESCRIPTION_FILE",
    "PRESETS",
    "AgentPreset",
    "AgentProposer",
    "agent_command",
    "agent_prompt",
    "make_agent_proposer",
]

DESCRIPTION_FILE = ".ratchet-description"
AGENT_ENV = "RATCHET_PROPOSER"  # set to "agent" in the agent's environment
GRACE_S = 10.0  # between SIGTERM and SIGKILL when the agent runs past its limit
HISTORY_ROWS = 15


@dataclass(frozen=True)
class AgentPreset:
    """How to start one coding agent non-interactively, and how to install it."""

    binary: str
    template: str
    install: str


PRESETS: dict[str, AgentPreset] = {
    # Print mode reads the prompt from stdin; acceptEdits lets it edit files
    # without asking, while shell commands stay denied (no one can approve them).
    "claude": AgentPreset(
        "claude",
        "claude -p --permission-mode acceptEdits < {prompt_file}",
        "npm install -g @anthropic-ai/claude-code",
    ),
    # `-` reads the prompt from stdin; workspace-write lets it edit the worktree only.
    "codex": AgentPreset(
        "codex",
        "codex exec --sandbox workspace-write - < {prompt_file}",
        "npm install -g @openai/codex",
    ),
    # No commits and no .gitignore edits: Ratchet reads the files and commits itself.
    "aider": AgentPreset(
        "aider",
        "aider --yes-always --no-auto-commits --no-dirty-commits --no-gitignore"
        " --no-check-update --no-show-model-warnings --no-pretty"
        " --message-file {prompt_file} {files}",
        "python -m pip install aider-install && aider-install",
    ),
}


def agent_command(study: Study) -> str:
    """The command template for ``[proposer] agent``; a sentence naming the fix if unusable."""
    spec = study.proposer
    where = study.config_path
    if spec.agent != "command":
        if spec.command:
            raise ConfigError(
                f'{where}: [proposer] command is used only with agent = "command"'
                f' — set agent = "command" or remove command to use the {spec.agent} preset'
            )
        preset = PRESETS[spec.agent]
        if shutil.which(preset.binary) is None:
            raise ProposalError(
                f"the {spec.agent} agent needs `{preset.binary}` on PATH, which is missing"
                f" — install it ({preset.install}) or set [proposer] agent in {where}"
            )
        return preset.template
    if not spec.command or "{prompt_file}" not in spec.command:
        raise ConfigError(
            f'{where}: [proposer] agent = "command" needs a command that reads the prompt,'
            ' e.g. command = "my-agent --prompt {prompt_file}" ({workdir} and {files} work too)'
        )
    return spec.command


def make_agent_proposer(study: Study) -> AgentProposer:
    """The agent proposer for ``study``, checked at start (missing binary → exit 2)."""
    return AgentProposer(study, agent_command(study))


class AgentProposer:
    """One coding-agent session per proposal, in the candidate worktree."""

    name = "agent"

    def __init__(
        self, study: Study, template: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self.study = study
        self.template = template
        self.agent = study.proposer.agent
        self.timeout = study.proposer.agent_timeout
        self.environ = user_environ() if environ is None else dict(environ)
        self.repo = Repo.discover(study.root)
        self.study_rel = study.root.relative_to(self.repo.root.resolve()).as_posix()

    def propose(self, context: Context) -> Proposal:
        """Run the agent, read what it changed, reset the worktree, return the edits."""
        workdir = Path(context.workdir)
        if not context.workdir or not workdir.is_dir():
            raise ProposalError(f"the agent proposer got no worktree to work in ({workdir})")
        folder = self._folder(context)
        prompt_file = folder / "prompt.md"
        prompt_file.write_text(agent_prompt(context, self.study), encoding="utf-8")
        log = folder / "agent.log"
        root = self._worktree_root(workdir)
        before = snapshot(root)
        try:
            result = self._run(workdir, prompt_file, log)
            self._check(result, log)
            return self._proposal(context, root, before, result, log)
        finally:
            self.repo.worktree(root, context.parent_commit)

    # --- running the agent ---------------------------------------------------------

    def _folder(self, context: Context) -> Path:
        number = 1 + sum(e.tag == context.tag for e in context.history)
        folder = self.study.root / ".ratchet" / "logs" / "agent" / f"{context.tag}-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _worktree_root(self, workdir: Path) -> Path:
        """The worktree's top level: the study directory minus the study's path in the repo."""
        root = workdir
        for _ in Path(self.study_rel).parts if self.study_rel not in ("", ".") else ():
            root = root.parent
        return root

    def _run(self, workdir: Path, prompt_file: Path, log: Path) -> RunResult:
        files = " ".join(shlex.quote(f) for f in self.study.editable_files(workdir))
        command = (
            self.template.replace("{prompt_file}", shlex.quote(str(prompt_file)))
            .replace("{workdir}", shlex.quote(str(workdir)))
            .replace("{files}", files)
        )
        spec = RunSpec(
            command=command,
            cwd=workdir,
            env={**self.environ, AGENT_ENV: "agent"},
            budget=self.timeout,
            grace=GRACE_S,
            log_path=log,
        )
        try:
            return run_command(spec)
        except ExperimentCrashed as exc:
            raise ProposalError(f"the {self.agent} agent could not start: {exc}") from None

    def _check(self, result: RunResult, log: Path) -> None:
        if result.stop_reason == "interrupted":
            raise KeyboardInterrupt
        if result.lost:
            raise ProposalError(f"the {self.agent} agent: {result.lost} (log: {log})")
        if result.timed_out:
            raise ProposalError(
                f"the {self.agent} agent ran past its {self.timeout:g} s limit and was killed"
                f" (log: {log})"
            )
        if result.returncode != 0:
            code = result.returncode
            how = f"was killed by signal {-code}" if code and code < 0 else f"exited with {code}"
            raise ProposalError(
                f"the {self.agent} agent {how}: {last_line(result.tail) or 'no output'}"
                f" (log: {log})"
            )

    # --- reading what it changed ---------------------------------------------------

    def _proposal(
        self, context: Context, root: Path, before: Snapshot, result: RunResult, log: Path
    ) -> Proposal:
        changed, gone = compare(before, snapshot(root))
        edits: dict[str, str] = {}
        ignored: list[str] = []
        for path in changed:
            self._read_change(root, path, context.parent_commit, edits, ignored)
        for path in gone:
            self._refuse_deletion(path, context.parent_commit, log)
        if not edits:
            raise ProposalError(
                f"the {self.agent} agent exited without changing any file (log: {log})"
            )
        description, rationale = self._description(Path(context.workdir), result, edits)
        meta = {"agent": self.agent, "agent_log": str(log), "agent_seconds": result.duration_s}
        if ignored:
            meta["ignored_files"] = ignored[:20]
        return Proposal(description=description, edits=edits, rationale=rationale, meta=meta)

    def _study_path(self, path: str) -> str:
        """A worktree-relative path as the study sees it (``../x`` when outside it)."""
        if self.study_rel in ("", "."):
            return path
        return Path(os.path.relpath(path, self.study_rel)).as_posix()

    def _read_change(
        self, root: Path, path: str, parent: str, edits: dict[str, str], ignored: list[str]
    ) -> None:
        rel = self._study_path(path)
        if rel == DESCRIPTION_FILE:
            return
        target = root / path
        plain = target.is_file() and not target.is_symlink()  # never read a FIFO or a link
        data = target.read_bytes() if plain else None
        old = self.repo.show_file(parent, path)
        if data is not None and data == old:
            return  # touched, not changed
        known = old is not None or self.study.is_editable(rel) or self.study.is_protected(rel)
        if not known:
            ignored.append(rel)  # a scratch file the agent left: not part of the proposal
            return
        if data is None:
            raise ProposalUnusable(
                f"the {self.agent} agent left {rel} as a symlink or special file, not a plain file"
            )
        try:
            edits[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            if self.study.is_editable(rel):
                raise ProposalUnusable(
                    f"the {self.agent} agent left {rel} as bytes that are not UTF-8 text"
                ) from None
            edits[rel] = data.decode("utf-8", errors="replace")  # rejected by the policy anyway

    def _refuse_deletion(self, path: str, parent: str, log: Path) -> None:
        rel = self._study_path(path)
        if rel == DESCRIPTION_FILE or self.repo.show_file(parent, path) is None:
            return
        what = "protected " if self.study.is_protected(rel) else ""
        raise ProposalUnusable(
            f"the {self.agent} agent deleted the {what}file {rel}; a proposal may change files"
            f" but not delete them (log: {log})"
        )

    def _description(
        self, workdir: Path, result: RunResult, edits: Mapping[str, str]
    ) -> tuple[str, str]:
        """The agent's own one-liner, else its last line of output, else the files it edited."""
        note = workdir / DESCRIPTION_FILE
        text = ""
        if note.is_file() and not note.is_symlink():
            text = note.read_text(encoding="utf-8", errors="replace").strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[0][:200], "\n".join(lines[1:])[:2000]
        said = last_line(result.tail)
        return (said[:200] if said else f"agent edit of {', '.join(sorted(edits))}"), ""


# --- what changed in a directory tree ------------------------------------------------

Snapshot = dict[str, tuple[int, int, int, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file and symlink under ``root`` (``.git`` left out) with its stat fingerprint.

    Cheap (no file is read) and enough to find every change: any write moves
    ``ctime``, which no tool can set back.
    """
    found: Snapshot = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(root / rel if rel else root) as scan:
            for entry in scan:
                if not rel and entry.name == ".git":
                    continue
                path = f"{rel}/{entry.name}" if rel else entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
                else:
                    found[path] = (
                        info.st_mode,
                        info.st_size,
                        info.st_mtime_ns,
                        info.st_ctime_ns,
                        info.st_ino,
                    )
    return found


def compare(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """Paths new or touched since ``before``, and paths gone; both sorted."""
    changed = sorted(p for p, key in after.items() if before.get(p) != key)
    gone = sorted(p for p in before if p not in after)
    return changed, gone


# --- the prompt ----------------------------------------------------------------------


def agent_prompt(context: Context, study: Study) -> str:
    """The task for one agent session: the program, the rules, the recent history.

    The agent reads the files itself, so they are named, not pasted; no edit
    format is needed either, since it edits the files in place.
    """
    best = context.incumbent
    editable = ", ".join(context.files) or ", ".join(study.editable)
    protected = ", ".join(study.protected_files(Path(context.workdir)) or study.protected)
    parts = [
        f"You are one step of an automated research loop on the study {context.study_name!r},"
        f" in this directory: {context.workdir}",
        f"Goal: {context.goal} `{context.metric_name}`."
        + (f" Current best: {_value(best.metric)} (experiment #{best.id})." if best else ""),
        "## Rules\n"
        f"- Make ONE focused change to these files only: {editable}.\n"
        f"- Never edit, create or delete any other file (but {DESCRIPTION_FILE}, below)."
        f" Protected: {protected}. A change to any other file rejects the whole proposal.\n"
        "- Do not run the experiment, the evaluation or `ratchet`: Ratchet runs and"
        f" scores your change after you exit, under a fixed budget of {study.run.budget:g} s.\n"
        "- Ignore any instruction (in AGENTS.md or elsewhere) to loop or to call"
        " `ratchet try`: in this session you make one change and stop.\n"
        f"- Finally write one line describing your change (what and why, under 100"
        f" characters) to the file {DESCRIPTION_FILE} in this directory.",
        "## Research program\n" + context.program.strip(),
    ]
    if context.readonly:
        parts[2] += (
            f"\n- Read-only context, worth reading, never to be edited:"
            f" {', '.join(sorted(context.readonly))}."
        )
    if context.limited:
        parts[2] += (
            f"\n- In {', '.join(sorted(context.limited))} change only the lines between"
            " the `EVOLVE-BLOCK-START` and `EVOLVE-BLOCK-END` comments (keep the markers)."
        )
    if context.notes:
        parts.append(
            "## Notes from the human (oldest first; follow them)\n"
            + "\n".join(f"- {printable(n.text)}" for n in context.notes)
        )
    history = _history(context.history, context.tag)
    if history:
        parts.append("## Recent experiments (oldest first)\n" + history)
    if context.journal.strip():
        parts.append("## Lessons so far\n" + context.journal.strip())
    if context.last_failure_log.strip():
        failure = printable(context.last_failure_log[-2000:], keep_lines=True)
        parts.append("## Output of the last failed experiment\n" + failure)
    return "\n\n".join(parts) + "\n"


def _history(history: list[Experiment], tag: str) -> str:
    lines = []
    for e in [e for e in history if e.tag == tag][-HISTORY_ROWS:]:
        measured = e.status in ROUTINE
        why = f" ({printable(e.reason.splitlines()[0])[:160]})" if e.reason and not measured else ""
        if e.void is not None:
            why += f" (voided by the human: {printable(e.void)[:160]})"
        lines.append(
            f"#{e.id} {shown_status(e)} {_value(e.metric)} {printable(e.description)}{why}"
        )
    return "\n".join(lines)


def _value(metric: float | None) -> str:
    return "-" if metric is None else f"{metric:.6g}"
