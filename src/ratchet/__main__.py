"""``python -m ratchet`` is the ``ratchet`` command."""

from .cli import entry

entry()
