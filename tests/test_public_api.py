"""The names a library user needs are importable from `ratchet` itself."""

from __future__ import annotations

import ratchet
from ratchet import errors


def test_public_names_resolve() -> None:
    for name in ratchet.__all__:
        assert getattr(ratchet, name) is not None


def test_every_error_class_is_public() -> None:
    assert set(errors.__all__) <= set(ratchet.__all__)
    for name in errors.__all__:
        assert issubclass(getattr(ratchet, name), ratchet.RatchetError)


def test_the_seams_are_public() -> None:
    for name in ("Study", "Proposal", "Experiment", "Context", "Proposer", "Judge", "run_study"):
        assert name in ratchet.__all__
