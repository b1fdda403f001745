"""The write threshold, measured on held-out facts instead of guessed.

A completion run writes an inferred edge when its probability among the
candidate tails clears ``threshold``. Which precision a threshold gives
depends on the graph (how many candidates, how regular its relations are),
so a fixed 0.5 means something different on every graph. Here the model,
trained without the held-out facts, answers the queries ``(head, relation,
?)`` that have a held-out answer exactly as the write path would (same
candidates, same top-k, facts it trained on skipped); a written answer is
right when it is a held-out fact. That gives precision and recall at every
threshold, and the lowest threshold whose precision reaches a target.

The precision read this way is a lower bound: a true fact that is neither in
the graph nor held out counts as wrong (the open-world gap every link
prediction benchmark has), and a held-out fraction of 10% leaves most true
answers of a query in the training facts, where they are skipped, not
counted right.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from .model import CompletionModel, EntityFeatures
from .predict import predict
from .snapshot import GraphSnapshot

# a precision read off fewer predictions than this is noise, not a reason to pick a threshold
MIN_WRITTEN = 10


@dataclass(frozen=True)
class ThresholdPoint:
    threshold: float
    written: int  # predictions at or above the threshold
    correct: int  # of those, held-out facts
    precision: float | None  # None when nothing is written
    recall: float  # correct / held-out facts

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "written": self.written, "correct": self.correct,
                "precision": None if self.precision is None else round(self.precision, 4),
                "recall": round(self.recall, 4)}


@dataclass(frozen=True)
class HeldOutCurve:
    """Every prediction made for the held-out queries, best first, and whether it was right."""

    scores: np.ndarray  # [n] float, descending
    correct: np.ndarray  # [n] bool
    held_out: int  # held-out facts the queries came from

    def at(self, threshold: float) -> ThresholdPoint:
        n = int(np.searchsorted(-self.scores, -threshold, side="right"))  # scores >= threshold
        right = int(self.correct[:n].sum())
        return ThresholdPoint(float(threshold), n, right, right / n if n else None,
                              right / self.held_out if self.held_out else 0.0)

    def lowest_threshold_for(self, target_precision: float, min_written: int = 1) -> float | None:
        """The lowest threshold (most recall) whose precision is at least ``target_precision`` with
        at least ``min_written`` predictions written; None when no threshold reaches it."""
        if not len(self.scores):
            return None
        precision = np.cumsum(self.correct) / np.arange(1, len(self.scores) + 1)
        # a cut is only possible between distinct scores: keep the last index of each tied run
        last_of_run = np.append(self.scores[1:] != self.scores[:-1], True)
        ok = np.flatnonzero(last_of_run & (precision >= target_precision)
                            & (np.arange(1, len(self.scores) + 1) >= min_written))
        return float(self.scores[ok[-1]]) if len(ok) else None

    def points(self, thresholds) -> list[ThresholdPoint]:
        return [self.at(float(t)) for t in thresholds]


def held_out_curve(model: CompletionModel, feats: EntityFeatures, snapshot: GraphSnapshot, known: np.ndarray,
                   held_out: np.ndarray, top_k: int, **predict_kwargs) -> HeldOutCurve:
    """Predictions for the queries of ``held_out`` with only ``known`` facts in the graph.

    ``snapshot`` gives the entities and relations (its own triples are not read); ``known`` and
    ``held_out`` are ``[n, 3]`` triples into it. Candidate types per relation come from ``known``, as
    they would in a run that never saw the held-out facts."""
    held_out = np.asarray(held_out, dtype=np.int64).reshape(-1, 3)
    heads: dict[int, set[int]] = defaultdict(set)
    for h, r, _ in held_out.tolist():
        heads[r].add(h)
    pred = predict(model, feats, replace(snapshot, triples=np.asarray(known, dtype=np.int64).reshape(-1, 3)),
                   top_k=top_k, threshold=0.0, heads_by_relation=dict(heads), **predict_kwargs)
    index = {key: i for i, key in enumerate(snapshot.entity_keys)}
    rel_index = {name: i for i, name in enumerate(snapshot.relations)}
    truth = {tuple(t) for t in held_out.tolist()}
    scores = np.array([p.score for p in pred.predictions], dtype=np.float64)
    right = np.array([(index[p.head], rel_index[p.relation], index[p.tail]) in truth for p in pred.predictions],
                     dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return HeldOutCurve(scores[order], right[order], len(truth))
