"""Training with filtered negative sampling, cold or warm-started.

Each step scores a batch of queries ``(e, r, ?)`` against the batch's own
answers plus ``negatives`` entities drawn uniformly; candidates that are
known answers of a query (the filter index) are masked out instead of being
pushed down as false negatives. The query's own entity is always a candidate
too: WN18RR-style graphs have no self loops, and a text model must learn not
to answer "itself". Loss: cross-entropy over the candidates.
Residual dropout sometimes hides an entity's learned residual, so the text
projection alone must carry the signal that unseen entities depend on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import FilterIndex, with_inverses
from .model import CompletionModel, EntityFeatures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """One training run's settings. Epochs, batch, negatives, learning rate and seed have no
    defaults here: production takes them from ``completion:`` in the config
    (``pipeline.config.CompletionConfig``, their one home), benchmarks and tests pass their own."""

    epochs: int
    batch_size: int
    negatives: int
    lr: float
    seed: int
    residual_dropout: float = 0.2
    n3: float = 0.0  # nuclear 3-norm regulariser weight (Lacroix et al. 2018)
    progress: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    epochs: int
    steps: int
    losses: list[float]
    seconds: float


def train_model(model: CompletionModel, feats: EntityFeatures, triples: np.ndarray, filt: FilterIndex,
                cfg: TrainSettings, n_candidates: int | None = None) -> TrainResult:
    """Train ``model`` in place on ``triples`` (both directions).

    ``n_candidates``: negatives come from entities ``0 .. n_candidates-1``
    (default all); an inductive split puts its unseen entities after them.
    """
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    queries = torch.from_numpy(with_inverses(np.asarray(triples, dtype=np.int64).reshape(-1, 3), model.n_relations))
    n_cand = n_candidates or len(feats)
    dense = [p for n, p in model.named_parameters() if not n.startswith("residual.")]
    opts = [torch.optim.Adam(dense, lr=cfg.lr)]
    if model.n_known_entities:
        opts.append(torch.optim.SparseAdam(list(model.residual.parameters()), lr=cfg.lr))
    model.train()
    losses: list[float] = []
    steps = 0
    start = time.monotonic()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(queries), generator=gen)
        total, n = 0.0, 0
        bar = tqdm(range(0, len(queries), cfg.batch_size), desc=f"train epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not cfg.progress, leave=False)
        for s in bar:
            q = queries[order[s:s + cfg.batch_size]]
            heads, rels, tails = q[:, 0], q[:, 1], q[:, 2]
            neg = torch.randint(0, n_cand, (cfg.negatives,), generator=gen)
            cands = torch.cat([tails, heads, neg])
            ent = model.entities(feats, torch.cat([heads, cands]), cfg.residual_dropout)
            h_vec, c_vec = ent[:len(heads)], ent[len(heads):]
            qv = model.query(h_vec, rels)
            scores = model.score(qv, c_vec)
            known = filt.contains(heads, rels, cands.expand(len(heads), -1))
            target = torch.arange(len(heads))
            known[target, target] = False
            scores = scores.masked_fill(known, float("-inf"))
            loss = torch.nn.functional.cross_entropy(scores, target)
            if cfg.n3:
                k = model.cfg.rank
                mods = [(v[:, :k] ** 2 + v[:, k:] ** 2).sqrt() for v in (h_vec, model.relation[rels], c_vec[:len(heads)])]
                loss = loss + cfg.n3 * sum((m ** 3).sum() for m in mods) / len(heads)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in opts:
                opt.step()
            total += loss.item() * len(heads)
            n += len(heads)
            steps += 1
            bar.set_postfix(loss=f"{total / n:.3f}")
        losses.append(total / max(n, 1))
        log.info("completion epoch", extra={"epoch": epoch + 1, "loss": losses[-1], "steps": steps})
    model.eval()
    return TrainResult(cfg.epochs, steps, losses, time.monotonic() - start)
