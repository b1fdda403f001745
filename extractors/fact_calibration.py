"""Calibrated fact confidence: the probability that a fact the extractor writes is right.

The relation model's softmax is not that probability: on real posts a fact at
0.99 was no likelier to be right than one at 0.6, because the softmax only
compares relation labels for a pair it assumes is well-formed, and knows
nothing of a bad span, a handle or a list of places. Here every candidate fact
(an entity pair with the best relation its MNER types allow) is described by a
few features -- the relation model's probability and its ``None``
probability, the tagger's span confidences, the relation, whether an end is a
handle or hashtag, the distance between the ends, how many entities the post
has, whether the reverse pair agrees, what the gazetteer says of the places --
and a logistic regression fitted on hand-labelled real posts (the dev half of
``benchmarks/data/end_to_end``) maps them to P(fact is right).

Facts are written when that probability reaches a per-relation threshold chosen
for a target precision (``extractor.target_precision``) on the same dev half,
from out-of-fold probabilities so the choice is not flattered by the fit; a
relation with too few dev facts uses the threshold of all relations together.
The calibration belongs to the model versions it was fitted for: another
version (a continual update) runs uncalibrated until it is refitted.

Saved as plain JSON (no pickles): feature names, weights, and the out-of-fold
(relation, probability, right) rows thresholds are chosen from, so a different
target precision needs no refit.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SHIPPED_FACTS = Path(__file__).resolve().parent / "shipped" / "facts"
MIN_RELATION_SUPPORT = 15  # dev candidates of a relation before it gets its own threshold


def logit(p: float, eps: float = 1e-4) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


@dataclass
class FactCalibrator:
    """Logistic regression over candidate-fact features, and the dev rows its thresholds come from."""

    models: str  # the "mner+mre" versions it was fitted for
    names: list[str]  # feature names, in weight order
    weights: list[float]
    bias: float
    dev_rows: list[tuple[str, float, bool]] = field(default_factory=list)  # relation, OOF probability, right
    info: dict = field(default_factory=dict)  # how it was fitted (data, C, folds)

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * features.get(n, 0.0) for n, w in zip(self.names, self.weights))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def thresholds(self, target_precision: float) -> dict[str, float]:
        """Per relation (and ``"*"`` for all together): the lowest probability whose facts at or
        above it reach ``target_precision`` on the dev rows; 1.01 (write nothing) where none does."""
        out = {"*": precision_threshold([(p, r) for _, p, r in self.dev_rows], target_precision)}
        by_rel: dict[str, list[tuple[float, bool]]] = {}
        for rel, p, right in self.dev_rows:
            by_rel.setdefault(rel, []).append((p, right))
        for rel, rows in by_rel.items():
            if len(rows) >= MIN_RELATION_SUPPORT and sum(r for _, r in rows) >= 3:
                out[rel] = precision_threshold(rows, target_precision)
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"models": self.models, "names": self.names, "weights": self.weights,
                                          "bias": self.bias, "dev_rows": self.dev_rows, "info": self.info},
                                         indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "FactCalibrator":
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(d["models"], list(d["names"]), [float(w) for w in d["weights"]], float(d["bias"]),
                   [(str(r), float(p), bool(y)) for r, p, y in d["dev_rows"]], d.get("info", {}))


@dataclass
class FactHead:
    """Which relation, if any, a pair of a post really stands in, by the labelling guideline.

    A multinomial logistic regression over the relation model's own pair vector
    ``[h_CLS ; h_head ; h_tail]`` (its encoder stays as shipped), trained on
    every pair of predicted and gold spans of real posts labelled by
    docs/LABELLING.md (``None`` for every pair without a fact). The relation
    model learned MNRE's conventions, where co-mentioned people are ``peer``
    and a place list is ``contain``; the head relearns the decision, not the
    representation."""

    models: str  # the "mner+mre" versions whose vectors it reads
    labels: list[str]
    weight: "object"  # numpy (labels, dim)
    bias: "object"  # numpy (labels,)
    info: dict = field(default_factory=dict)

    def probabilities(self, vectors):
        import numpy as np

        z = np.asarray(vectors, dtype=np.float32) @ self.weight.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"weight": self.weight.astype("float32"), "bias": self.bias.astype("float32")},
                  str(folder / "head.safetensors"))
        (folder / "head.json").write_text(json.dumps({"models": self.models, "labels": self.labels,
                                                      "info": self.info}, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "FactHead":
        from safetensors.numpy import load_file

        meta = json.loads((folder / "head.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "head.safetensors"))
        return cls(meta["models"], list(meta["labels"]), tensors["weight"], tensors["bias"], meta.get("info", {}))


@dataclass
class FactModel:
    """What decides facts for one pair of model versions: the fact head (optional) and the calibration,
    saved together in one folder (``head.safetensors``, ``head.json``, ``calibration.json``)."""

    head: FactHead | None
    calibrator: FactCalibrator | None

    @classmethod
    def load(cls, folder: str | Path) -> "FactModel":
        folder = Path(folder)
        head = FactHead.load(folder) if (folder / "head.json").exists() else None
        cal = folder / "calibration.json"
        return cls(head, FactCalibrator.load(cal) if cal.exists() else None)


def precision_threshold(rows: Sequence[tuple[float, bool]], target: float, min_facts: int = 5) -> float:
    """The lowest probability t such that the rows at or above t are right at rate >= ``target``
    (at least ``min_facts`` of them); 1.01 when no t does."""
    ranked = sorted(rows, key=lambda r: -r[0])
    best, right = 1.01, 0
    for n, (p, ok) in enumerate(ranked, 1):
        right += ok
        nxt = ranked[n][0] if n < len(ranked) else -1.0
        if nxt == p:
            continue  # a threshold cannot split equal probabilities
        if n >= min_facts and right / n >= target:
            best = p
    return best


def fit(rows: Sequence[dict[str, float]], right: Sequence[bool], relations: Sequence[str], groups: Sequence[str],
        models: str, folds: int = 5, seed: int = 0) -> FactCalibrator:
    """Fit on candidate facts of labelled posts; ``groups`` (post ids) keep a post's candidates in one fold.

    The regularisation is chosen by grouped cross-validated log-loss; the saved dev rows hold
    out-of-fold probabilities, so thresholds chosen from them are honest about unseen posts."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import GroupKFold

    names = sorted({n for r in rows for n in r})
    x = np.array([[r.get(n, 0.0) for n in names] for r in rows], dtype=float)
    y = np.array(right, dtype=int)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(x, y, groups))

    def oof(c: float) -> np.ndarray:
        out = np.zeros(len(y))
        for tr, te in splits:
            model = LogisticRegression(C=c, max_iter=2000).fit(x[tr], y[tr])
            out[te] = model.predict_proba(x[te])[:, 1]
        return out

    scores = {c: log_loss(y, oof(c), labels=[0, 1]) for c in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)}
    c = min(scores, key=scores.get)
    probs = oof(c)
    model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
    return FactCalibrator(models, names, [float(w) for w in model.coef_[0]], float(model.intercept_[0]),
                          [(rel, round(float(p), 5), bool(t)) for rel, p, t in zip(relations, probs, y)],
                          {"C": c, "cv_log_loss": {str(k): round(v, 4) for k, v in scores.items()},
                           "folds": folds, "candidates": len(y), "right": int(y.sum())})


def fit_head(vectors, labels: Sequence[str], groups: Sequence[str], label_space: Sequence[str], models: str,
             folds: int = 4, seed: int = 0) -> FactHead:
    """The fact head on labelled pair vectors; its regularisation chosen by grouped cross-validation
    (log-loss) on the same training posts, never on the dev or test halves."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import GroupKFold

    space = list(label_space)
    y = np.array([space.index(lab) for lab in labels])
    x = np.asarray(vectors, dtype=np.float32)
    splits = list(GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y, groups))
    scores = {}
    for c in (0.001, 0.003, 0.01, 0.03, 0.1):
        losses = []
        for tr, te in splits:
            model = LogisticRegression(C=c, max_iter=500).fit(x[tr], y[tr])
            proba = np.zeros((len(te), len(space)))
            proba[:, model.classes_] = model.predict_proba(x[te])
            losses.append(log_loss(y[te], np.clip(proba, 1e-6, 1), labels=list(range(len(space)))))
        scores[c] = float(np.mean(losses))
    c = min(scores, key=scores.get)
    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    weight = np.full((len(space), x.shape[1]), 0.0, dtype=np.float32)
    bias = np.full(len(space), -30.0, dtype=np.float32)  # a label no training pair had: never predicted
    weight[model.classes_] = model.coef_
    bias[model.classes_] = model.intercept_
    counts = {space[i]: int((y == i).sum()) for i in sorted(set(y.tolist()))}
    return FactHead(models, space, weight, bias, {"C": c, "cv_log_loss": {str(k): round(v, 4) for k, v in
                                                                          scores.items()}, "pairs": counts})
