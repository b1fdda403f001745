"""Re-ranking by graph distance (graph_store.completion.rerank) on hand-made graphs."""
from __future__ import annotations

import numpy as np
import torch

from graph_store.completion.data import FilterIndex
from graph_store.completion.evaluate import rank_triples, ranking_metrics
from graph_store.completion.model import CompletionModel, EntityFeatures, ModelConfig
from graph_store.completion.predict import predict
from graph_store.completion.rerank import FEATURES, Neighbourhood, Reranker, RerankSettings, fit_reranker
from graph_store.completion.snapshot import EntityInfo, GraphSnapshot


def test_distances_are_shortest_and_exclude_the_entity_itself():
    # a path 0-1-2-3-4 (directions ignored: 2->1 is written backwards) and an isolated 5
    around = Neighbourhood(np.array([[0, 0, 1], [2, 1, 1], [2, 0, 3], [3, 0, 4]]), 6)
    d1, d2, d3 = (d.toarray() for d in around.distances(np.array([0, 2, 5])))
    assert [set(np.flatnonzero(row)) for row in d1] == [{1}, {1, 3}, set()]
    assert [set(np.flatnonzero(row)) for row in d2] == [{2}, {0, 4}, set()]
    assert [set(np.flatnonzero(row)) for row in d3] == [{3}, set(), set()]  # 4 is 4 hops from 0

    feats = around.features(np.array([0, 2]))
    assert feats.shape == (2, 6, len(FEATURES) - 1)
    assert feats[0, :, 3].tolist() == [1, 0, 0, 0, 0, 0]  # the "itself" plane
    # per-row candidate lists read the same values; -1 pads and reads as nothing
    pairs = around.pair_features(np.array([0, 2]), np.array([[3, 0, -1], [4, 1, 0]]))
    assert torch.equal(pairs[0, :2], feats[0, [3, 0]]) and torch.equal(pairs[1], feats[1, [4, 1, 0]])
    assert pairs[0, 2].sum() == 0


def _groups(first: int, count: int) -> list[tuple[int, int, int, int]]:
    return [tuple(range(4 * g, 4 * g + 4)) for g in range(first, first + count)]


def test_fitted_weights_find_what_the_model_cannot_see():
    """Relation 0 is symmetric (the answer is one hop away, the other direction is known); relation 1
    joins the two ends of a chain a-b-c-d of relation 2 (the answer is three hops away, the one-hop
    entity is wrong). A model that scores at random ranks them nowhere; re-ranked, both come first
    on groups the weights never saw."""
    train, fit_facts, test_facts = [], [], []
    for g, (a, b, c, d) in enumerate(_groups(0, 60)):
        train += [(a, 2, b), (b, 2, c), (c, 2, d), (b, 0, a)]
        (fit_facts if g < 30 else test_facts).extend([(a, 0, b), (a, 1, d)])
    train, fit_facts, test_facts = (np.array(x) for x in (train, fit_facts, test_facts))
    n = 240
    filt = FilterIndex(np.concatenate([train, fit_facts, test_facts]), n, 3)
    noise = torch.randn(n * 6, n, generator=torch.Generator().manual_seed(0))

    def model_scores(ents: torch.Tensor, rels: torch.Tensor) -> torch.Tensor:
        return noise[ents * 6 + rels]

    around = Neighbourhood(train, n)
    fit = fit_reranker(model_scores, around, fit_facts, filt, RerankSettings(epochs=30, batch_size=32, lr=0.1))
    w = fit.reranker.weights
    assert fit.losses[-1] < fit.losses[0]
    assert w[0, 1] > 1.0 and w[0, 1] > w[0, 2]  # symmetric: one hop
    assert w[1, 3] > w[1, 1] + 1.0 and w[1, 3] > w[1, 2] + 1.0  # chain ends: three hops, not one or two

    alone = ranking_metrics(rank_triples(model_scores, test_facts, filt)).mrr
    reranked = ranking_metrics(rank_triples(fit.reranker.scorer(model_scores, around), test_facts, filt)).mrr
    assert alone < 0.2 and reranked > 0.9


def test_reranker_round_trips_and_refuses_other_features():
    r = Reranker(torch.randn(4, len(FEATURES)))
    assert torch.allclose(Reranker.from_dict(r.as_dict(precise=True)).weights, r.weights)
    bad = {**r.as_dict(), "features": ["model score", "1 hop"]}
    try:
        Reranker.from_dict(bad)
    except ValueError as e:
        assert "features" in str(e)
    else:
        raise AssertionError("a reranker of other features was read")


def test_predict_reranks_on_the_exact_and_the_shortlist_path():
    """Weights that ignore the model and favour one hop: each head's new answer is its neighbour
    through another relation, with nearly all the probability, whichever way candidates are found."""
    entities = [EntityInfo(f"X:{i}", f"e{i}", "X") for i in range(8)]
    triples = np.array([[0, 0, 1], [2, 1, 3], [4, 1, 5], [6, 1, 7]])
    snap = GraphSnapshot(entities, ["R0", "R1"], triples, "test")
    model = CompletionModel(ModelConfig(text_dim=8, rank=4), 8, 2)
    feats = EntityFeatures(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    weights = torch.zeros(4, len(FEATURES))
    weights[:, 1] = 12.0
    rerank = (Reranker(weights), Neighbourhood(triples, 8))
    for ann in (None, 0):
        pred = predict(model, feats, snap, top_k=1, threshold=0.0, rerank=rerank, ann_min_candidates=ann, shortlist=8)
        best = {(p.head, p.relation): (p.tail, p.score) for p in pred.predictions}
        for h, t in ((2, 3), (4, 5), (6, 7)):
            tail, p = best[(f"X:{h}", "R0")]
            assert tail == f"X:{t}" and p > 0.99, (ann, h, tail, p)
