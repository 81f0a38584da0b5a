"""A stand-in for the names an OpenEvolve evaluator imports, carried by a ported Ratchet study.

Ratchet never installs or imports OpenEvolve; ``ratchet init --from openevolve``
puts this small package on the evaluator's path so ``from
openevolve.evaluation_result import EvaluationResult`` keeps working.
"""

from openevolve.evaluation_result import EvaluationResult

__all__ = ["EvaluationResult"]
