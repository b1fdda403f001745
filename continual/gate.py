"""The promotion gate: an update goes live only if it learned and did not forget.

Scores are validation F1 (micro-F1 without ``None`` for MRE, entity-level for
MNER) of the *current* model and the candidate on the same examples, so the
comparison is fair: old classes before vs after, new classes after.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GatePolicy:
    max_old_drop: float = 5.0  # F1 points the old classes may lose
    min_new_f1: float = 30.0  # F1 the new classes must reach


@dataclass
class GateDecision:
    passed: bool
    old_before: float | None  # None when there were no old classes (first model)
    old_after: float | None
    new_after: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def decide(policy: GatePolicy, old_before: float | None, old_after: float | None, new_after: float) -> GateDecision:
    reasons = []
    if old_before is not None and old_after is not None and old_before - old_after > policy.max_old_drop:
        reasons.append(f"old classes dropped {old_before - old_after:.2f} F1 points "
                       f"({old_before:.2f} -> {old_after:.2f}; at most {policy.max_old_drop:.2f} allowed)")
    if new_after < policy.min_new_f1:
        reasons.append(f"new classes reached F1 {new_after:.2f}, below the required {policy.min_new_f1:.2f}")
    return GateDecision(not reasons, old_before, old_after, new_after, reasons)
