"""Evaluation metrics with the literature's conventions.

MRE: micro precision/recall/F1 over all relations except ``None``.
MNER: entity-level (exact span and type) P/R/F1 via seqeval, conlleval mode.
"""
from __future__ import annotations

from typing import Sequence


def re_micro_prf(gold: Sequence[str], pred: Sequence[str], none_label: str = "None") -> dict[str, float]:
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    correct = sum(1 for g, p in zip(gold, pred) if g == p and g != none_label)
    predicted = sum(1 for p in pred if p != none_label)
    actual = sum(1 for g in gold if g != none_label)
    return _prf(correct, predicted, actual)


def ner_entity_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold, pred = [list(g) for g in gold], [list(p) for p in pred]
    return {"precision": 100 * precision_score(gold, pred), "recall": 100 * recall_score(gold, pred),
            "f1": 100 * f1_score(gold, pred)}


def ner_per_type(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Entity-level P/R/F1 per type (same matching as :func:`ner_entity_prf`), with the gold
    count (``support``) and the predicted count of each type."""
    from seqeval.metrics.sequence_labeling import get_entities

    gold_sets, pred_sets = set(), set()
    for i, (g, p) in enumerate(zip(gold, pred)):
        gold_sets |= {(i, t, s, e) for t, s, e in get_entities(list(g))}
        pred_sets |= {(i, t, s, e) for t, s, e in get_entities(list(p))}
    out = {}
    for etype in sorted({x[1] for x in gold_sets | pred_sets}):
        g = {x for x in gold_sets if x[1] == etype}
        p = {x for x in pred_sets if x[1] == etype}
        out[etype] = {**_prf(len(g & p), len(p), len(g)), "support": len(g), "predicted": len(p)}
    return out


def re_per_relation(gold: Sequence[str], pred: Sequence[str], none_label: str = "None") -> dict[str, dict[str, float]]:
    """P/R/F1 of every relation except ``None``, with its gold count (``support``) and predicted count."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    out = {}
    for label in sorted((set(gold) | set(pred)) - {none_label}):
        correct = sum(1 for g, p in zip(gold, pred) if g == p == label)
        predicted = sum(1 for p in pred if p == label)
        actual = sum(1 for g in gold if g == label)
        out[label] = {**_prf(correct, predicted, actual), "support": actual, "predicted": predicted}
    return out


def majority_baseline_re(train: Sequence[str], test: Sequence[str]) -> dict[str, float]:
    """Predict the most frequent non-None training label for everything."""
    from collections import Counter

    label = Counter(l for l in train if l != "None").most_common(1)[0][0]
    return re_micro_prf(test, [label] * len(test))


def _prf(correct: int, predicted: int, actual: int) -> dict[str, float]:
    p = 100 * correct / predicted if predicted else 0.0
    r = 100 * correct / actual if actual else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}
