"""gitrepo: real temporary repositories; the user's checkout is never touched."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ratchet.errors import GitError
from ratchet.git import repo as gitrepo
from ratchet.git.repo import Repo, Worktree

FILES = {
    "train.py": "LR = 0.01\nprint('loss: 1.0')\n",
    "evaluate.py": "print('eval')\n",
    "lib/util.py": "def f():\n    return 1\n",
    "lib/deep/data.txt": "1 2 3\n",
    "a-b.py": "x = 1\n",
    "a.py": "y = 2\n",
    "a/x.py": "z = 3\n",
    "with space é.txt": "unicode name\n",
    ".gitignore": "*.log\n__pycache__/\n",
}


@pytest.fixture(autouse=True)
def git_identity(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A known identity and no system config, so tests never depend on the machine."""
    config = tmp_path_factory.mktemp("home") / ".gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return config


def git(cwd: Path, *args: str) -> str:
    """Run git the way a user would (not through the module under test)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(root: Path, files: dict[str, str] = FILES, *init: str) -> Path:
    """A repository with ``files`` committed on main (and run.sh executable)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    git(root, "init", "-q", "-b", "main", "--template=", *init)  # no sample hooks to copy
    git(root, "add", "-A")
    git(
        root,
        "-c",
        "user.name=Test",
        "-c",
        "user.email=test@example.com",
        "commit",
        "-qm",
        "initial",
    )
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module: copying it is much cheaper than running git init each time."""
    return make_repo(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def user(tmp_path: Path, template: Path) -> Path:
    """The user's checkout (a fresh copy of the template)."""
    return Path(shutil.copytree(template, tmp_path / "user", symlinks=True))


@pytest.fixture
def repo(user: Path) -> Repo:
    return Repo.discover(user)


@pytest.fixture
def tree(repo: Repo, user: Path) -> Worktree:
    return repo.worktree(user / ".ratchet" / "worktrees" / "t-0", repo.head())


def checkout_state(root: Path) -> tuple[str, str, str]:
    """What the user sees: status, HEAD and the current branch."""
    status = git(root, "status", "--porcelain", "--untracked-files=all")
    return status, git(root, "rev-parse", "HEAD"), git(root, "branch", "--show-current")


# --- discovery ---------------------------------------------------------------


def test_discover_outside_a_repository_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="is not inside a git repository — run `git init"):
        Repo.discover(tmp_path)


def test_discover_without_git_names_the_fix(
    tmp_path: Path, user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GitError) as caught:
        Repo.discover(user)
    assert str(caught.value) == gitrepo.GIT_MISSING


def test_discover_from_a_subfolder_finds_the_top(user: Path) -> None:
    repo = Repo.discover(user / "lib" / "deep")
    assert repo.root == user.resolve()


def test_head_of_an_empty_repository_names_the_fix(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(GitError, match="has no commit yet — run `git add -A && git commit"):
        Repo.discover(tmp_path).head()


def test_head_branch_and_rev(repo: Repo, user: Path) -> None:
    head = git(user, "rev-parse", "HEAD")
    assert repo.head() == head
    assert repo.current_branch() == "main"
    assert repo.rev("main") == head and repo.rev("nope") is None and repo.rev("--all") is None
    git(user, "checkout", "-q", "--detach")
    assert repo.current_branch() is None


def test_a_failed_git_call_is_a_git_error_with_command_and_reason(repo: Repo) -> None:
    with pytest.raises(GitError, match=r"`git diff-tree .*nope.*` failed: fatal"):
        repo.diff("HEAD", "nope")


def test_init_if_needed_commits_a_new_repository_only(tmp_path: Path, user: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "train.py").write_text("x = 1\n")
    assert Repo.init_if_needed(fresh, "ratchet init") is True
    assert git(fresh, "log", "--format=%s") == "ratchet init"
    assert git(fresh, "status", "--porcelain") == ""
    before = checkout_state(user)
    (user / "lib" / "new.py").write_text("untracked\n")
    assert Repo.init_if_needed(user / "lib", "ratchet init") is False
    assert checkout_state(user)[1:] == before[1:]
    assert "?? lib/new.py" in checkout_state(user)[0]


# --- info/exclude, refs, reading -----------------------------------------------


def test_exclude_is_idempotent_and_keeps_status_clean(repo: Repo, user: Path) -> None:
    repo.exclude()
    repo.exclude()
    repo.exclude(".ratchet/")
    lines = (user / ".git" / "info" / "exclude").read_text().splitlines()
    assert lines.count(".ratchet/") == 1
    (user / ".ratchet").mkdir()
    (user / ".ratchet" / "ledger.sqlite").write_text("x")
    assert git(user, "status", "--porcelain", "--untracked-files=all") == ""


def test_update_ref_and_refs(repo: Repo, user: Path) -> None:
    head = repo.head()
    first = git(user, "rev-parse", "HEAD^{tree}")
    other = git(user, "commit-tree", first, "-m", "other")
    repo.update_ref("refs/ratchet/t/exp/1", head)
    repo.update_ref("refs/ratchet/t/exp/2", other, "")
    repo.update_ref("refs/heads/ratchet/t", head)
    repo.update_ref("refs/heads/ratchet/t", other, head)
    assert repo.refs("refs/ratchet/t/") == {
        "refs/ratchet/t/exp/1": head,
        "refs/ratchet/t/exp/2": other,
    }
    assert repo.refs("refs/ratchet/t/exp/2") == {"refs/ratchet/t/exp/2": other}
    assert repo.refs("refs/ratchet/u/") == {}
    assert repo.rev("ratchet/t") == other


def test_update_ref_with_a_stale_old_value_fails(repo: Repo, user: Path) -> None:
    head = repo.head()
    other = git(user, "commit-tree", "HEAD^{tree}", "-m", "other")
    repo.update_ref("refs/heads/ratchet/t", head)
    with pytest.raises(GitError, match="update-ref"):
        repo.update_ref("refs/heads/ratchet/t", other, other)
    with pytest.raises(GitError, match="update-ref"):
        repo.update_ref("refs/heads/ratchet/t", other, "")
    assert repo.rev("refs/heads/ratchet/t") == head


def test_update_ref_refuses_refs_that_are_not_ratchets(repo: Repo) -> None:
    for ref in ("refs/heads/main", "HEAD", "refs/tags/v1", "refs/ratchetx/a"):
        with pytest.raises(GitError, match="refusing to move"):
            repo.update_ref(ref, repo.head())


def test_update_ref_refuses_a_branch_the_user_has_checked_out(repo: Repo, user: Path) -> None:
    git(user, "checkout", "-q", "-b", "ratchet/t")
    with pytest.raises(GitError, match="is checked out in"):
        repo.update_ref("refs/heads/ratchet/t", repo.head())


def test_show_file(repo: Repo) -> None:
    head = repo.head()
    assert repo.show_file(head, "lib/util.py") == FILES["lib/util.py"].encode()
    assert repo.show_file(head, "./train.py") == FILES["train.py"].encode()
    assert repo.show_file(head, "missing.py") is None
    assert repo.show_file(head, "lib") is None


def test_diff_and_diff_stat(repo: Repo, user: Path) -> None:
    base = repo.head()
    (user / "train.py").write_text("LR = 0.02\nprint('loss: 1.0')\nprint('more')\n")
    (user / "evaluate.py").unlink()
    git(user, "commit", "-qam", "change")
    head = repo.head()
    diff = repo.diff(base, head)
    assert "-LR = 0.01\n+LR = 0.02\n" in diff and "+print('more')" in diff
    assert "diff --git a/evaluate.py b/evaluate.py" in diff
    assert repo.diff_stat(base, head) == (2, 2, 2)
    assert repo.diff(head, head) == "" and repo.diff_stat(head, head) == (0, 0, 0)


def test_dirty_lists_uncommitted_paths_under_a_folder(repo: Repo, user: Path) -> None:
    assert repo.dirty() == []
    (user / "lib" / "util.py").write_text("changed\n")
    (user / "lib" / "new.py").write_text("new\n")
    (user / "train.py").write_text("changed\n")
    (user / "debug.log").write_text("ignored\n")
    assert sorted(repo.dirty("lib")) == ["lib/new.py", "lib/util.py"]
    assert sorted(repo.dirty()) == ["lib/new.py", "lib/util.py", "train.py"]


# --- worktrees -----------------------------------------------------------------


def test_worktree_is_detached_at_the_commit_and_leaves_the_user_alone(
    repo: Repo, user: Path
) -> None:
    before = checkout_state(user)
    repo.exclude()
    tree = repo.worktree(user / ".ratchet" / "worktrees" / "t-0", repo.head())
    assert (tree.path / "lib" / "deep" / "data.txt").read_text() == FILES["lib/deep/data.txt"]
    assert git(tree.path, "rev-parse", "HEAD") == repo.head()
    assert git(tree.path, "branch", "--show-current") == ""
    assert git(tree.path, "status", "--porcelain") == ""
    assert checkout_state(user) == before


def test_worktree_is_reused_and_reset(repo: Repo, user: Path, tree: Worktree) -> None:
    (tree.path / "leftover.txt").write_text("from a previous run")
    again = repo.worktree(tree.path, repo.head())
    assert again.path == tree.path and not (tree.path / "leftover.txt").exists()
    assert git(user, "worktree", "list").count("\n") == 1


def _delete_dir(tree: Worktree, user: Path) -> None:
    gitrepo._remove(str(tree.path), True)


def _lock_and_delete(tree: Worktree, user: Path) -> None:
    git(user, "worktree", "lock", str(tree.path), "--reason", "initializing")
    gitrepo._remove(str(tree.path), True)


def _lock_only(tree: Worktree, user: Path) -> None:
    git(user, "worktree", "lock", str(tree.path))


def _drop_registration(tree: Worktree, user: Path) -> None:
    gitrepo._remove(str(user / ".git" / "worktrees" / "t-0"), True)


def _drop_dot_git(tree: Worktree, user: Path) -> None:
    (tree.path / ".git").unlink()


def _index_lock(tree: Worktree, user: Path) -> None:
    (user / ".git" / "worktrees" / "t-0" / "index.lock").write_text("")


@pytest.mark.parametrize(
    "damage",
    [_delete_dir, _lock_and_delete, _lock_only, _drop_registration, _drop_dot_git, _index_lock],
)
def test_worktree_is_repaired_after_a_crash(repo: Repo, user: Path, tree: Worktree, damage) -> None:  # noqa: ANN001
    (tree.path / "out.log").write_text("old output")
    damage(tree, user)
    fixed = repo.worktree(tree.path, repo.head())
    assert (fixed.path / "train.py").read_text() == FILES["train.py"]
    assert not (fixed.path / "out.log").exists()
    assert git(fixed.path, "status", "--porcelain", "--ignored") == ""
    listing = git(user, "worktree", "list", "--porcelain")
    assert listing.count("worktree ") == 2 and "locked" not in listing
    sha = fixed.commit(repo.head(), {"train.py": "LR = 1\n"}, "after repair")
    assert repo.show_file(sha, "train.py") == b"LR = 1\n"


@pytest.mark.parametrize("pointer", [None, "gitdir: {user}/.git\n"])
def test_a_run_that_breaks_dot_git_cannot_reach_the_users_checkout(
    repo: Repo, user: Path, tree: Worktree, pointer: str | None
) -> None:
    repo.exclude()
    (user / "train.py").write_text("the user's uncommitted work\n")
    git(user, "add", "train.py")
    before = checkout_state(user)
    if pointer is None:
        (tree.path / ".git").unlink()
    else:
        (tree.path / ".git").write_text(pointer.format(user=user))
    (tree.path / "train.py").write_text("changed by the run\n")
    tree.reset(repo.head())
    assert (tree.path / "train.py").read_text() == FILES["train.py"]
    assert (user / "train.py").read_text() == "the user's uncommitted work\n"
    assert checkout_state(user) == before
    fixed = repo.worktree(tree.path, repo.head())
    assert git(fixed.path, "status", "--porcelain") == "" and checkout_state(user) == before


def test_prune_worktrees_forgets_deleted_ones(repo: Repo, user: Path, tree: Worktree) -> None:
    gitrepo._remove(str(tree.path), True)
    repo.prune_worktrees()
    assert git(user, "worktree", "list").count("\n") == 0


def test_worktree_refuses_to_replace_the_repository(repo: Repo, user: Path) -> None:
    with pytest.raises(GitError, match="contains the repository"):
        repo.worktree(user.parent, repo.head())
    assert (user / "train.py").exists()


# --- reset -------------------------------------------------------------------------


def test_reset_removes_untracked_and_ignored_and_restores_tracked(
    repo: Repo, tree: Worktree
) -> None:
    root = tree.path
    (root / "train.py").write_text("modified\n")
    (root / "evaluate.py").unlink()
    gitrepo._remove(str(root / "a"), True)
    (root / "a").write_text("a file where a directory was")
    (root / "a.py").unlink()
    (root / "a.py").mkdir()
    (root / "a.py" / "inner").write_text("a directory where a file was")
    (root / "run.sh").chmod(0o644)
    (root / "lib" / "new.py").write_text("untracked")
    (root / "lib" / "__pycache__").mkdir()
    (root / "lib" / "__pycache__" / "util.pyc").write_bytes(b"ignored")
    (root / "out" / "nested" / ".git").mkdir(parents=True)
    (root / "train.log").write_text("ignored")
    (root / "link").symlink_to(root.parent)
    readonly = root / "readonly"
    (readonly / "sub").mkdir(parents=True)
    (readonly / "sub" / "f").write_text("x")
    (readonly / "sub").chmod(0o500)
    tree.reset(repo.head())
    assert git(root, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""
    assert (root / "train.py").read_text() == FILES["train.py"]
    assert (root / "a" / "x.py").read_text() == FILES["a/x.py"]
    assert os.stat(root / "run.sh").st_mode & stat.S_IXUSR
    assert root.parent.exists()


def test_tracked_symlinks_are_kept_and_never_written_through(repo: Repo, user: Path) -> None:
    (user / "lib_link").symlink_to("lib")
    git(user, "add", "lib_link")
    git(user, "commit", "-qm", "link")
    tree = repo.worktree(user / ".ratchet" / "worktrees" / "l", repo.head())
    (tree.path / "lib" / "junk.txt").write_text("untracked, reached through the link")
    tree.reset(repo.head())
    assert os.readlink(tree.path / "lib_link") == "lib"
    assert (tree.path / "lib" / "util.py").exists() and not (
        tree.path / "lib" / "junk.txt"
    ).exists()
    with pytest.raises(GitError, match="goes through 'lib_link'"):
        tree.commit(repo.head(), {"lib_link/util.py": "x\n"}, "through a link")


def test_reset_restores_a_same_size_change_made_at_once(repo: Repo, tree: Worktree) -> None:
    head = repo.head()
    for i in range(10):
        tree.reset(head)
        (tree.path / "train.py").write_text(f"LR = 0.0{i % 10}\nprint('loss: 1.0')\n")
        tree.reset(head)
        assert (tree.path / "train.py").read_text() == FILES["train.py"]


def test_reset_moves_between_commits(repo: Repo, tree: Worktree) -> None:
    base = repo.head()
    sha = tree.commit(base, {"lib/new/mod.py": "new\n", "train.py": "LR = 9\n"}, "add")
    tree.reset(base)
    assert not (tree.path / "lib" / "new").exists()
    tree.reset(sha)
    assert (tree.path / "lib" / "new" / "mod.py").read_text() == "new\n"
    assert git(tree.path, "rev-parse", "HEAD") == sha
    tree.reset(base)
    assert not (tree.path / "lib" / "new").exists()
    assert (tree.path / "train.py").read_text() == FILES["train.py"]


# --- commit --------------------------------------------------------------------------


def test_commit_has_the_parent_and_content_and_touches_no_branch(
    repo: Repo, user: Path, tree: Worktree
) -> None:
    repo.exclude()
    before = checkout_state(user)
    base = repo.head()
    edits = {"train.py": "LR = 0.02\n", "a/new.py": "n = 1\n", "lib/deep/data.txt": "4\n"}
    sha = tree.commit(base, edits, "try a larger LR")
    assert git(user, "rev-list", "--parents", "-n1", sha).split() == [sha, base]
    assert git(user, "log", "-1", "--format=%s|%an <%ae>", sha) == (
        "try a larger LR|Test <test@example.com>"
    )
    for path, text in edits.items():
        assert repo.show_file(sha, path) == text.encode()
        assert (tree.path / path).read_text() == text
    assert repo.show_file(sha, "evaluate.py") == FILES["evaluate.py"].encode()
    assert repo.diff_stat(base, sha) == (3, 3, 3)
    assert checkout_state(user) == before
    assert git(user, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    git(user, "fsck", "--strict", "--no-dangling")


def test_commit_trees_are_the_ones_git_would_write(repo: Repo, tree: Worktree) -> None:
    edits = {"a/x.py": "z = 4\n", "a/b/c.py": "new\n", "a-b.py": "x = 2\n", "with space é.txt": ""}
    sha = tree.commit(repo.head(), edits, "sorting")
    git(tree.path, "add", "-A")
    assert git(tree.path, "write-tree") == git(tree.path, "rev-parse", f"{sha}^{{tree}}")


def test_commit_keeps_the_executable_bit(repo: Repo, tree: Worktree) -> None:
    sha = tree.commit(repo.head(), {"run.sh": "#!/bin/sh\necho changed\n"}, "script")
    assert git(tree.path, "ls-tree", sha, "run.sh").startswith("100755 blob")
    assert os.access(tree.path / "run.sh", os.X_OK)


def test_commit_without_changes_is_still_a_new_commit(repo: Repo, tree: Worktree) -> None:
    base = repo.head()
    base_tree = git(tree.path, "rev-parse", f"{base}^{{tree}}")
    for new in (
        tree.commit(base, {}, "nothing"),
        tree.commit(base, {"train.py": FILES["train.py"]}, "same text"),
    ):
        assert new != base
        assert git(tree.path, "rev-parse", f"{new}^{{tree}}") == base_tree


def test_commit_replaces_a_symlink_instead_of_writing_through_it(
    repo: Repo, tree: Worktree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tree.path / "notes.txt").symlink_to(outside)
    sha = tree.commit(repo.head(), {"notes.txt": "mine\n"}, "notes")
    assert outside.read_text() == "precious"
    assert repo.show_file(sha, "notes.txt") == b"mine\n"


def test_commit_never_creates_directories_through_a_symlink(
    repo: Repo, tree: Worktree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree.path / "out_link").symlink_to(outside)
    with pytest.raises(GitError, match="a symlink in the worktree"):
        tree.commit(repo.head(), {"out_link/new/x.py": "x\n"}, "escape")
    assert list(outside.iterdir()) == []


def test_commit_refuses_paths_outside_the_tree_or_clashing(repo: Repo, tree: Worktree) -> None:
    for path in ("../escape.py", "/etc/passwd", ".git/config", "lib/../../x", "", "a.py/x", "lib"):
        with pytest.raises(GitError, match="edit path"):
            tree.commit(repo.head(), {path: "x\n"}, "bad")
    assert not (tree.path.parent / "escape.py").exists()


def test_commit_falls_back_to_ratchets_identity(
    tmp_path: Path, git_identity: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_repo(tmp_path / "u")
    git_identity.write_text("")
    tree = Repo.discover(user).worktree(user / ".ratchet" / "wt", git(user, "rev-parse", "HEAD"))
    sha = tree.commit(git(user, "rev-parse", "HEAD"), {"train.py": "x\n"}, "m")
    assert git(user, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha) == (
        "Ratchet <ratchet@localhost>|Ratchet <ratchet@localhost>"
    )


def test_no_hook_ever_runs(tmp_path: Path, user: Path) -> None:
    marker = tmp_path / "hook-ran"
    (user / ".git" / "hooks").mkdir(exist_ok=True)
    for hook in ("post-checkout", "reference-transaction", "pre-commit", "post-commit"):
        script = user / ".git" / "hooks" / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        script.chmod(0o755)
    repo = Repo.discover(user)
    tree = repo.worktree(user / ".ratchet" / "worktrees" / "h", repo.head())
    sha = tree.commit(repo.head(), {"train.py": "x\n"}, "m")
    repo.update_ref("refs/ratchet/h/exp/1", sha)
    assert not marker.exists()


def test_sha256_repository(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "u256", FILES, "--object-format=sha256")
    repo = Repo.discover(user)
    tree = repo.worktree(user / ".ratchet" / "wt", repo.head())
    sha = tree.commit(repo.head(), {"lib/util.py": "changed\n"}, "sha256")
    assert len(sha) == 64 and repo.show_file(sha, "lib/util.py") == b"changed\n"
    tree.reset(sha)
    git(user, "fsck", "--strict", "--no-dangling")


def test_study_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    files = {f"studies/sine/{name}": text for name, text in FILES.items()}
    user = make_repo(tmp_path / "mono", {**files, "README.md": "top\n"})
    study = user / "studies" / "sine"
    repo = Repo.discover(study)
    repo.exclude()
    before = checkout_state(user)
    tree = repo.worktree(study / ".ratchet" / "worktrees" / "sine-0", repo.head())
    sha = tree.commit(repo.head(), {"studies/sine/train.py": "LR = 3\n"}, "sub")
    assert (tree.path / "studies" / "sine" / "train.py").read_text() == "LR = 3\n"
    (tree.path / "studies" / "sine" / "out.log").write_text("output")
    tree.reset(repo.head())
    assert not (tree.path / "studies" / "sine" / "out.log").exists()
    repo.update_ref("refs/ratchet/sine/exp/1", sha)
    assert repo.show_file(sha, "studies/sine/train.py") == b"LR = 3\n"
    assert checkout_state(user) == before


def test_hot_path_uses_few_git_calls(
    repo: Repo, tree: Worktree, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(args, *rest, **kwargs):  # noqa: ANN001, ANN202
        calls.append(args)
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(gitrepo.subprocess, "run", counting)
    head = repo.head()
    for i in range(3):
        calls.clear()
        (tree.path / "out.log").write_text("run output")
        tree.reset(head)
        sha = tree.commit(head, {"train.py": f"LR = {i}\n"}, f"exp {i}")
        repo.update_ref(f"refs/ratchet/t/exp/{i}", sha)
        assert len(calls) <= 6
    assert len(calls) == 2  # reset --hard and update-ref; objects are written in Python


def test_parallel_workers_share_one_repo(repo: Repo, user: Path) -> None:
    head = repo.head()
    trees = [repo.worktree(user / ".ratchet" / "worktrees" / f"p-{i}", head) for i in range(2)]

    def work(i: int) -> list[str]:
        shas = []
        for n in range(5):
            trees[i].reset(head)
            shas.append(trees[i].commit(head, {"train.py": f"LR = {i}.{n}\n"}, f"w{i} {n}"))
        return shas

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(work, range(2)))
    for i, shas in enumerate(results):
        assert [repo.show_file(sha, "train.py") for sha in shas] == [
            f"LR = {i}.{n}\n".encode() for n in range(5)
        ]
    git(user, "fsck", "--strict", "--no-dangling")
