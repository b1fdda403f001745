"""Fitting the scorer on seen classes, choosing its epoch on validation classes, and the metrics.

Model selection never looks at the test classes: after each epoch the scorer
labels the validation-class samples among the validation classes only (a
zero-shot task of its own), and the epoch with the best macro-F1 there is
kept. That is the paper's protocol (8 train / 7 validation / 7 test classes).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..training import seed_everything
from .features import SampleFeatures

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    epochs: int = 30
    lr: float = 3e-4  # chosen on the validation classes (1e-3 overfits the 8 seen classes within an epoch)
    weight_decay: float = 1e-2
    batch_size: int = 64
    seed: int = 0
    balanced: bool = True  # sample classes evenly: MNRE's seen classes range from 8 to 1,236 examples


@dataclass
class FitResult:
    scorer: nn.Module
    best_epoch: int
    best_val_macro_f1: float
    history: list[dict] = field(default_factory=list)
    last_state: dict | None = None  # the weights after the last epoch (the scorer holds the best)


def macro_prf(gold: Sequence[int], pred: Sequence[int], classes: Sequence[int]) -> dict[str, float]:
    """Macro precision/recall/F1 (percent) over ``classes``, and accuracy over all rows."""
    ps, rs, fs = [], [], []
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred) if g == p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_gold = sum(1 for g in gold if g == c)
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        ps.append(p)
        rs.append(r)
        fs.append(2 * p * r / (p + r) if p + r else 0.0)
    acc = sum(1 for g, p in zip(gold, pred) if g == p) / max(1, len(gold))
    k = max(1, len(classes))
    return {"precision": 100 * sum(ps) / k, "recall": 100 * sum(rs) / k, "f1": 100 * sum(fs) / k,
            "accuracy": 100 * acc}


@torch.no_grad()
def score_matrix(scorer: nn.Module, feats: SampleFeatures, class_vectors: torch.Tensor,
                 batch_size: int = 512) -> torch.Tensor:
    """[N, C] scores of every sample against every class."""
    scorer.eval()
    return torch.cat([scorer.scores(feats.take(range(start, min(len(feats), start + batch_size))), class_vectors)
                      for start in range(0, len(feats), batch_size)])


def predict(scorer: nn.Module, feats: SampleFeatures, class_vectors: torch.Tensor,
            batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(best class index, its score) per sample."""
    best_score, best = score_matrix(scorer, feats, class_vectors, batch_size).max(1)
    return best, best_score


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b else 0.0


def generalised_scores(scores: torch.Tensor, labels: Sequence[int], seen: Sequence[int], unseen: Sequence[int],
                       gamma: float = 0.0) -> dict[str, float]:
    """Macro-F1 over seen and over unseen classes when every class competes, and their harmonic mean.

    ``gamma`` is subtracted from the seen classes' scores first (calibrated stacking, Chao et al.
    2016): a scorer trained on the seen classes scores them higher than any class it has only read
    about, so without it unseen classes are almost never predicted.
    """
    adjusted = scores.clone()
    adjusted[:, list(seen)] -= gamma
    pred = adjusted.argmax(1).tolist()
    s = macro_prf(list(labels), pred, seen)["f1"]
    u = macro_prf(list(labels), pred, unseen)["f1"]
    return {"seen_f1": s, "unseen_f1": u, "hmean": harmonic_mean(s, u)}


def choose_gamma(scores: torch.Tensor, labels: Sequence[int], seen: Sequence[int], unseen: Sequence[int],
                 grid: Sequence[float] = tuple(i / 100 for i in range(0, 61, 2))) -> float:
    """The calibration offset with the best harmonic mean (on validation data, never test)."""
    return max(grid, key=lambda g: generalised_scores(scores, labels, seen, unseen, g)["hmean"])


def fit(build: Callable[[], nn.Module], fit_config: FitConfig, train: SampleFeatures, train_labels: torch.Tensor,
        seen_vectors: torch.Tensor, val: SampleFeatures, val_labels: torch.Tensor, val_vectors: torch.Tensor,
        progress: bool = False) -> FitResult:
    """Train the model ``build()`` makes (after seeding, so its initial weights follow the seed) on
    ``train`` (labels index ``seen_vectors``); keep the epoch best on ``val``.

    The model needs ``loss(feats, labels, class_vectors) -> (tensor, parts)`` and
    ``scores(feats, class_vectors) -> [N, C]``: the scorer and the ZS-BERT-style baseline have both.
    """
    seed_everything(fit_config.seed)
    scorer = build()
    opt = torch.optim.AdamW(scorer.parameters(), lr=fit_config.lr, weight_decay=fit_config.weight_decay)
    generator = torch.Generator().manual_seed(fit_config.seed)
    weights = None
    if fit_config.balanced:
        counts = torch.bincount(train_labels, minlength=seen_vectors.shape[0]).float()
        weights = (1.0 / counts.clamp(min=1))[train_labels]
    best_state, best_f1, best_epoch, history = None, -1.0, -1, []
    n_batches = max(1, len(train) // fit_config.batch_size)
    for epoch in tqdm(range(fit_config.epochs), desc="zero-shot scorer", unit="epoch", disable=not progress):
        scorer.train()
        if weights is not None:
            order = torch.multinomial(weights, n_batches * fit_config.batch_size, replacement=True, generator=generator)
        else:
            order = torch.randperm(len(train), generator=generator)
        totals: dict[str, float] = {}
        for b in range(n_batches):
            idx = order[b * fit_config.batch_size:(b + 1) * fit_config.batch_size]
            loss, parts = scorer.loss(train.take(idx), train_labels[idx], seen_vectors)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v / n_batches
        pred, _ = predict(scorer, val, val_vectors)
        f1 = macro_prf(val_labels.tolist(), pred.tolist(), range(val_vectors.shape[0]))["f1"]
        history.append({"epoch": epoch, "val_macro_f1": f1, **totals})
        log.info("epoch %d val macro-F1 %.1f %s", epoch, f1, totals)
        if f1 > best_f1:
            best_f1, best_epoch, best_state = f1, epoch, copy.deepcopy(scorer.state_dict())
    last_state = copy.deepcopy(scorer.state_dict())
    scorer.load_state_dict(best_state)
    scorer.eval()
    return FitResult(scorer, best_epoch, best_f1, history, last_state)
