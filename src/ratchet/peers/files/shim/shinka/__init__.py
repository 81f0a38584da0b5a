"""A stand-in for the names a ShinkaEvolve evaluator imports, carried by a ported Ratchet study.

Ratchet never installs or imports ShinkaEvolve; ``ratchet init --from shinka``
puts this small package on the evaluator's path so ``from shinka.core import
run_shinka_eval`` keeps working.
"""
