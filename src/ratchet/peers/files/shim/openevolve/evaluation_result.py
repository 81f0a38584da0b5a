"""``EvaluationResult``: what an OpenEvolve evaluator may return instead of a plain dict.

Only the documented shape: ``metrics`` (name -> number, where Ratchet finds
the metric) and ``artifacts`` (name -> text or bytes, shown to nobody here).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvaluationResult:
    """Metrics of one evaluation and optional side information."""

    metrics: dict[str, float]
    artifacts: dict[str, str | bytes] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, float]) -> EvaluationResult:
        return cls(metrics=dict(metrics))

    def to_dict(self) -> dict[str, float]:
        return dict(self.metrics)

    def has_artifacts(self) -> bool:
        return bool(self.artifacts)

    def get_artifact_keys(self) -> list[str]:
        return list(self.artifacts)
