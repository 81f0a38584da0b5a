"""The few git operations Ratchet needs: worktrees, refs, commits, objects."""
