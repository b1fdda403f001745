"""A_k and U_k: how a continual learner scores after task k.

- ``A_k``: F1 on the cumulative test set of task k (every class seen so far):
  MRE micro-F1 without ``None``, MNER entity-level F1. The benchmarks' headline.
- ``U_k``: F1 on task k's *new* classes only (plasticity). Gold and predicted
  labels of other classes are mapped to the "nothing" label (``None`` / ``O``)
  before scoring, so a hit counts only when both sides are a task-k class;
  the same restriction to an earlier task j's classes shows forgetting.

One prediction pass per evaluation; every score is computed from it.
"""
from __future__ import annotations

import warnings
from typing import Sequence

from extractors.metrics import ner_entity_prf, re_micro_prf


def restrict_relations(labels: Sequence[str], keep: set[str], none: str = "None") -> list[str]:
    return [l if l in keep else none for l in labels]


def restrict_tags(sequences: Sequence[Sequence[str]], types: set[str]) -> list[list[str]]:
    return [[t if t != "O" and t[2:] in types else "O" for t in seq] for seq in sequences]


def f1_on_classes(kind: str, gold: Sequence, pred: Sequence, classes: Sequence[str]) -> float:
    """F1 counting only ``classes`` (relations for MRE, entity types for MNER)."""
    keep = set(classes)
    if kind == "mre":
        return float(re_micro_prf(restrict_relations(gold, keep), restrict_relations(pred, keep))["f1"])
    return _ner_f1(restrict_tags(gold, keep), restrict_tags(pred, keep))


def f1_all(kind: str, gold: Sequence, pred: Sequence) -> float:
    return float(re_micro_prf(gold, pred)["f1"]) if kind == "mre" else _ner_f1(gold, pred)


def _ner_f1(gold: Sequence, pred: Sequence) -> float:
    # A model that predicts none of a task's entities is an expected outcome
    # here (forgetting), not something to warn about: F1 is then 0.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ill-defined.*")
        return float(ner_entity_prf(gold, pred)["f1"])


def score_after_task(kind: str, gold: Sequence, pred: Sequence, classes_per_task: Sequence[Sequence[str]]) -> dict:
    """Scores after task k = ``len(classes_per_task) - 1`` on its cumulative test set.

    Returns ``A`` (all seen classes), ``U`` (task k's new classes) and
    ``per_task`` (F1 on the classes of each task j <= k, for forgetting).
    """
    per_task = [f1_on_classes(kind, gold, pred, c) for c in classes_per_task]
    return {"A": f1_all(kind, gold, pred), "U": per_task[-1], "per_task": per_task}


def predict(task, model, examples: Sequence, device: str = "cpu") -> tuple[list, list]:
    """(gold, predicted) labels of ``examples`` with an extractors task adapter."""
    if task.kind == "mre":
        pred, _ = task.predict(model, examples, device=device)
        return [ex.relation for ex in examples], pred
    pred = task.predict(model, [ex.tokens for ex in examples], device=device)
    return [list(ex.tags) for ex in examples], pred
