"""A_k and U_k: how a continual learner scores after task k.

- ``A_k``: F1 on the cumulative test set of task k (every class seen so far):
  MRE micro-F1 without ``None``, MNER entity-level F1. The benchmarks' headline.
- ``U_k``: F1 on task k's *new* classes only (plasticity). Gold and predicted
  labels of other classes are mapped to the "nothing" label (``None`` / ``O``)
  before scoring, so a hit counts only when both sides are a task-k class;
  the same restriction to an earlier task j's classes shows forgetting.

One prediction pass per evaluation; every score is computed from it. What
differs between the kinds (labels or tag sequences, which F1) is the
kind's entry in :mod:`extractors.kinds`.
"""
from __future__ import annotations

from typing import Sequence

from extractors.kinds import TaskKind, get_kind


def f1_on_classes(kind: str | TaskKind, gold: Sequence, pred: Sequence, classes: Sequence[str]) -> float:
    """F1 counting only ``classes`` (relations for MRE, entity types for MNER)."""
    k, keep = get_kind(kind), set(classes)
    return k.f1(k.restrict(gold, keep), k.restrict(pred, keep))


def f1_all(kind: str | TaskKind, gold: Sequence, pred: Sequence) -> float:
    return get_kind(kind).f1(gold, pred)


def per_class(kind: str | TaskKind, gold: Sequence, pred: Sequence) -> dict[str, dict[str, float]]:
    """P/R/F1 with support per relation or entity type, as ``mkg evaluate`` reports them."""
    return get_kind(kind).per_class(gold, pred)


def score_after_task(kind: str | TaskKind, gold: Sequence, pred: Sequence,
                     classes_per_task: Sequence[Sequence[str]]) -> dict:
    """Scores after task k = ``len(classes_per_task) - 1`` on its cumulative test set.

    Returns ``A`` (all seen classes), ``U`` (task k's new classes) and
    ``per_task`` (F1 on the classes of each task j <= k, for forgetting).
    """
    per_task = [f1_on_classes(kind, gold, pred, c) for c in classes_per_task]
    return {"A": f1_all(kind, gold, pred), "U": per_task[-1], "per_task": per_task}


def predict(task, model, examples: Sequence, device: str = "cpu") -> tuple[list, list]:
    """(gold, predicted) labels of ``examples`` with an extractors task adapter."""
    return task.gold(examples), task.predict_examples(model, examples, device=device)
