"""The only package that composes effects: the workspace, verification, one experiment
(``trial``), the loop, and ``ratchet try``."""
