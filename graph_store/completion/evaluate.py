"""Filtered link-prediction ranking: MRR, Hits@1/3/10 and mean rank.

For a test triple, every entity is scored as the answer of ``(h, r, ?)`` and
of ``(t, r⁻¹, ?)``; other answers known true anywhere (train, valid or test)
are removed before ranking (the "filtered" setting of Bordes et al. 2013).
Ties count half ("realistic" rank), so a model that scores everything equal
gets the random expectation instead of rank 1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from .data import FilterIndex, with_inverses


@dataclass(frozen=True)
class RankingMetrics:
    mrr: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float
    mr: float
    queries: int

    def as_dict(self) -> dict:
        return asdict(self)


def filtered_ranks(scores: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """1-based rank of ``targets`` in each row of ``scores`` (higher = better),
    ignoring the other known answers (``known`` [B, N] bool); ties count half."""
    rows = torch.arange(len(targets))
    target_scores = scores[rows, targets].unsqueeze(1)
    others = known.clone()
    others[rows, targets] = False
    live = ~others
    higher = ((scores > target_scores) & live).sum(1)
    ties = ((scores == target_scores) & live).sum(1) - 1  # minus the target itself
    return 1.0 + higher.double() + ties.double() / 2.0


def ranking_metrics(ranks: torch.Tensor | np.ndarray) -> RankingMetrics:
    r = torch.as_tensor(ranks, dtype=torch.float64)
    if len(r) == 0:
        return RankingMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    return RankingMetrics(
        mrr=float((1.0 / r).mean()), hits_at_1=float((r <= 1).double().mean()),
        hits_at_3=float((r <= 3).double().mean()), hits_at_10=float((r <= 10).double().mean()),
        mr=float(r.mean()), queries=len(r))


def random_expected_mrr(n_candidates: int) -> float:
    """MRR of a uniformly random ranking of ``n_candidates`` (one answer)."""
    return float(np.mean(1.0 / np.arange(1, n_candidates + 1)))


ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (entities [B], relations [B]) -> [B, N]


@torch.no_grad()
def rank_triples(score_fn: ScoreFn, triples: np.ndarray, filt: FilterIndex, batch_size: int = 256,
                 progress: bool = False) -> torch.Tensor:
    """Filtered ranks of both directions of every triple (2 * len(triples))."""
    from tqdm import tqdm

    queries = with_inverses(np.asarray(triples, dtype=np.int64).reshape(-1, 3), filt.n_relations)
    out = []
    for start in tqdm(range(0, len(queries), batch_size), desc="rank", unit="batch", disable=not progress):
        q = queries[start:start + batch_size]
        scores = score_fn(torch.from_numpy(q[:, 0]), torch.from_numpy(q[:, 1])).float()
        out.append(filtered_ranks(scores, torch.from_numpy(q[:, 2]), filt.mask(q[:, 0], q[:, 1])))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def evaluate(score_fn: ScoreFn, triples: np.ndarray, filt: FilterIndex, batch_size: int = 256,
             progress: bool = False) -> RankingMetrics:
    return ranking_metrics(rank_triples(score_fn, triples, filt, batch_size, progress))
