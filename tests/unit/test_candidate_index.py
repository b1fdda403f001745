"""The approximate candidate index finds what scoring every entity finds, on clustered vectors."""
import numpy as np
import pytest

from graph_store.completion.candidates import CandidateIndex, IndexSettings


def clustered(n: int, dim: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    return c[rng.integers(0, centres, n)] + 0.2 * rng.normal(size=(n, dim)).astype(np.float32)


def test_the_shortlist_holds_the_exact_top_answers():
    vectors = clustered(20_000, 32, 50)
    queries = clustered(200, 32, 50, seed=1)
    index = CandidateIndex(vectors)  # the defaults: 4 * sqrt(N) cells, 32 scanned
    _, ids = index.search(queries, 100)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    held = np.mean([len(set(e) & set(a)) / 10 for e, a in zip(exact, ids)])
    assert held > 0.9, held
    assert ids.shape == (200, 100) and ids.min() >= 0 and ids.max() < 20_000


def test_a_tiny_graph_and_a_long_shortlist():
    vectors = clustered(30, 8, 3)
    index = CandidateIndex(vectors, IndexSettings(nprobe=64))  # every cell scanned: exact
    scores, ids = index.search(vectors[:2], 50)
    assert ids.shape == (2, 30)  # no more candidates than entities
    exact = np.argsort(-(vectors[:2] @ vectors.T), axis=1)
    assert (ids == exact).all()
    assert scores[:, 0] == pytest.approx((vectors[:2] * vectors[exact[:, 0]]).sum(1), rel=1e-4)
