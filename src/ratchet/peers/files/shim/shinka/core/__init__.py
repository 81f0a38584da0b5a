"""``shinka.core`` as far as an evaluator uses it: ``run_shinka_eval``."""

from shinka.core.wrap_eval import load_program, run_shinka_eval, save_json_results

__all__ = ["load_program", "run_shinka_eval", "save_json_results"]
