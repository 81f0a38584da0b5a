"""The ``ratchet`` command: argument parsing, the commands, the console view."""

from .main import entry, main

__all__ = ["main", "entry"]
