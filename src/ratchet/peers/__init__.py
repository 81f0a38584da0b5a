"""The door in from the peers: ``ratchet init DIR --from openevolve|shinka SRC``."""

from .port import PEERS, port

__all__ = ["PEERS", "port"]
