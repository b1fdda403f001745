"""Re-ranking by the graph around the query entity.

The completion model scores a candidate from two vectors; it never sees the
paths between the query entity and the candidate. Those paths say a lot, and
differently per relation: in WordNet an entity's derivational form is usually
one hop away already (the relation is symmetric and the other direction is
known), while the answer to "what is X a kind of" is rarely X's neighbour and
often three hops away (up to a sibling's hypernym). A one-line shortest-path
feature per hop carries that, and its sign and size per relation are learned.

So a query ``(e, r, ?)`` scores candidate ``c`` as

    w[r, 0] * model_score(e, r, c) + w[r, 1..3] · [dist(e, c) = 1, 2, 3] + w[r, 4] * [c = e]

with distances over the known facts taken as an undirected graph. The weights
(five per relation and direction) are fitted by cross-entropy over every
entity, other known answers filtered out, on facts the model did not train on;
``w[r, 0]`` is a temperature, so the softmax over the candidates reads as a
probability for the write threshold. It is the neighbourhood re-ranking of
SimKGC (Wang et al., 2022) with its fixed bonus replaced by learned weights,
a path-feature model in the sense of PRA (Lao & Cohen, 2010) cut down to
shortest-path length. Distances are computed per batch of query entities
(sparse row products), so nothing grows with the square of the graph.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .data import FilterIndex, with_inverses
from .evaluate import ScoreFn

log = logging.getLogger(__name__)

HOPS = 3
FEATURES = ("model score", "1 hop", "2 hops", "3 hops", "the query entity itself")


class Neighbourhood:
    """Shortest-path distances up to :data:`HOPS` over known facts (directions ignored)."""

    def __init__(self, triples: np.ndarray, n_entities: int) -> None:
        t = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        ones = np.ones(len(t), dtype=np.float32)
        a = sp.coo_matrix((ones, (t[:, 0], t[:, 2])), shape=(n_entities, n_entities)).tocsr()
        a = a + a.T
        a.data[:] = 1.0
        self.adjacency = a.tocsr()
        self.n_entities = n_entities

    def distances(self, entities: np.ndarray) -> list[sp.csr_matrix]:
        """For the rows ``entities``: one 0/1 matrix ``[B, N]`` per distance 1 .. HOPS (exact:
        each candidate appears in its shortest distance only, the entity itself in none)."""
        entities = np.asarray(entities, dtype=np.int64)
        rows = np.arange(len(entities))
        seen = sp.csr_matrix((np.ones(len(entities), dtype=np.float32), (rows, entities)),
                             shape=(len(entities), self.n_entities))
        frontier, out = seen, []
        for _ in range(HOPS):
            reached = frontier @ self.adjacency
            reached.data[:] = 1.0
            new = reached - reached.multiply(seen)  # drop what an earlier hop (or the entity) reached
            new.eliminate_zeros()
            out.append(new.tocsr())
            seen = seen + new
            frontier = new
        return out

    def features(self, entities: np.ndarray, candidates: np.ndarray | None = None,
                 distances: list[sp.csr_matrix] | None = None) -> torch.Tensor:
        """``[B, C, 4]``: distance 1, 2, 3 and "is the entity itself" for every candidate column
        (``candidates``: entity ids, default all) of every query entity. ``distances``: those of
        :meth:`distances` for these rows, when already computed."""
        entities = np.asarray(entities, dtype=np.int64)
        cols = np.arange(self.n_entities) if candidates is None else np.asarray(candidates, dtype=np.int64)
        planes = [torch.from_numpy((d if candidates is None else d[:, cols]).toarray())
                  for d in (distances if distances is not None else self.distances(entities))]
        planes.append(torch.from_numpy(entities[:, None] == cols[None, :]).float())
        return torch.stack(planes, dim=-1)

    def pair_features(self, entities: np.ndarray, candidates: np.ndarray) -> torch.Tensor:
        """``[B, K, 4]`` for a different candidate list per row (``candidates`` ``[B, K]``, -1 pads)."""
        entities = np.asarray(entities, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        rows = np.repeat(np.arange(len(entities)), candidates.shape[1])
        cols = candidates.clip(min=0).ravel()
        planes = [torch.from_numpy(np.asarray(d[rows, cols]).reshape(candidates.shape).astype(np.float32))
                  for d in self.distances(entities)]
        planes.append(torch.from_numpy(candidates == entities[:, None]).float())
        return torch.stack(planes, dim=-1)


@dataclass
class Reranker:
    """Per query relation (inverses included): a temperature and four graph weights."""

    weights: torch.Tensor  # [2 * n_relations, len(FEATURES)]

    def combine(self, scores: torch.Tensor, relations: torch.Tensor, graph_features: torch.Tensor) -> torch.Tensor:
        """Re-ranked logits ``[B, C]`` from model ``scores`` ``[B, C]`` and features ``[B, C, 4]``."""
        w = self.weights[relations]
        return w[:, :1] * scores + (graph_features * w[:, None, 1:]).sum(-1)

    def scorer(self, score_fn: ScoreFn, neighbourhood: Neighbourhood) -> ScoreFn:
        """``score_fn`` re-ranked (every entity a candidate), for :mod:`.evaluate`."""

        def score(ents: torch.Tensor, rels: torch.Tensor) -> torch.Tensor:
            return self.combine(score_fn(ents, rels), rels, neighbourhood.features(ents.numpy()))

        return score

    def as_dict(self, precise: bool = False) -> dict:
        """``precise``: every digit (saved with a model version); else rounded for a report."""
        rows = self.weights.tolist() if precise else [[round(x, 4) for x in row] for row in self.weights.tolist()]
        return {"features": list(FEATURES), "weights": rows}

    @classmethod
    def from_dict(cls, data: dict) -> Reranker:
        if list(data["features"]) != list(FEATURES):
            raise ValueError(f"reranker features {data['features']} are not this version's {list(FEATURES)}")
        return cls(torch.tensor(data["weights"], dtype=torch.float32))


@dataclass(frozen=True)
class RerankSettings:
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.05
    seed: int = 0


@dataclass
class RerankFit:
    reranker: Reranker
    losses: list[float]
    seconds: float
    queries: int


def fit_reranker(score_fn: ScoreFn, neighbourhood: Neighbourhood, triples: np.ndarray, filt: FilterIndex,
                 settings: RerankSettings = RerankSettings(), progress: bool = False) -> RerankFit:
    """Weights fitted on ``triples`` (both directions), which the model must not have trained on:
    on its own training facts the model is sure already and the graph would look useless.

    ``filt`` holds every known fact; the other answers of a query are masked out of its softmax.
    ``neighbourhood`` must not hold ``triples`` (else the answer is always one hop away).
    """
    from tqdm import tqdm

    start = time.monotonic()
    n_rel = filt.n_relations
    queries = with_inverses(np.asarray(triples, dtype=np.int64).reshape(-1, 3), n_rel)
    with torch.no_grad():  # the temperature starts where the model's scores have unit spread
        probe = queries[:256]
        spread = float(score_fn(torch.from_numpy(probe[:, 0]), torch.from_numpy(probe[:, 1])).std(1).mean())
    init = torch.zeros(2 * n_rel, len(FEATURES))
    init[:, 0] = 1.0 / max(spread, 1e-6)
    weights = torch.nn.Parameter(init)
    opt = torch.optim.Adam([weights], lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    # the distances do not change while the weights are fitted: one pass of row products for every epoch
    distances = neighbourhood.distances(queries[:, 0])
    losses = []
    for epoch in range(settings.epochs):
        order = rng.permutation(len(queries))
        total = 0.0
        for s in tqdm(range(0, len(queries), settings.batch_size), desc=f"rerank epoch {epoch + 1}/{settings.epochs}",
                      unit="batch", disable=not progress, leave=False):
            rows = order[s:s + settings.batch_size]
            q = queries[rows]
            ents, rels, answers = (torch.from_numpy(q[:, i]) for i in range(3))
            with torch.no_grad():
                scores = score_fn(ents, rels)
                feats = neighbourhood.features(q[:, 0], distances=[d[rows] for d in distances])
                others = filt.mask(q[:, 0], q[:, 1])
                others[torch.arange(len(q)), answers] = False
            logits = Reranker(weights).combine(scores, rels, feats).masked_fill(others, float("-inf"))
            loss = torch.nn.functional.cross_entropy(logits, answers)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(q)
        losses.append(total / max(len(queries), 1))
        log.info("rerank epoch", extra={"epoch": epoch + 1, "loss": losses[-1]})
    return RerankFit(Reranker(weights.detach().clone()), losses, time.monotonic() - start, len(queries))
