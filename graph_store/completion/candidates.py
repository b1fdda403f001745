"""Approximate candidate tails: the top-k entities by inner product, without scoring all of them.

Scoring a query ``h ∘ r`` against every entity is one matrix product, which
is what ranking and prediction do up to a few hundred thousand entities. At
millions it is the cost of the whole run, and the answers that matter are a
handful at the top. ComplEx scores are inner products of the query with the
entity vectors, so a maximum-inner-product index finds those few directly:
faiss's IVF index clusters the entity vectors once (k-means, ``nlist``
cells) and a query scans only the ``nprobe`` cells nearest to it. The
candidates it returns are then scored exactly by the model, so only recall
(did the true answer make the shortlist) is approximate, and the benchmark
measures it as MRR with and without the index.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IndexSettings:
    nlist: int | None = None  # k-means cells; default 4 * sqrt(N), at least 1
    nprobe: int = 32  # cells a query scans
    train_size: int = 100_000  # vectors the k-means sees (a random sample of the entities)
    seed: int = 0


class CandidateIndex:
    """Top-k entity ids by inner product with a query vector (approximate: IVF over the vectors)."""

    def __init__(self, vectors: np.ndarray, settings: IndexSettings = IndexSettings()) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        nlist = settings.nlist or max(1, int(4 * math.sqrt(n)))
        nlist = min(nlist, n)
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(settings.seed)
        sample = vectors[rng.choice(n, min(n, max(settings.train_size, nlist * 39)), replace=False)]
        self.index.train(sample)
        self.index.add(vectors)
        self.index.nprobe = min(settings.nprobe, nlist)
        self.size = n

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` best entities per query row; ids of -1 pad a short list."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(queries, min(k, self.size))
