"""Decisions over plain data: the judge, its statistics, pruning, the sampling protocol, dedupe.

Nothing here runs a process, touches git or writes a file."""
