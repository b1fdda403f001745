"""A tiny but real completion training run: real MiniLM, real WordNet texts, a
connected slice of real WN18RR, one epoch. It must beat random ranking by a
wide margin on held-out triples, and training must help over the untrained
(text-similarity) model."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from helpers import SHARED_DATA, unavailable

from extractors.encoders import MINILM
from graph_store.completion.data import FilterIndex, load_split
from graph_store.completion.evaluate import evaluate, random_expected_mrr
from graph_store.completion.model import CompletionModel, EntityFeatures, ModelConfig
from graph_store.completion.train import TrainSettings, train_model
from graph_store.completion.wordnet import resolve
from pipeline.jobs.completion import entity_text_embedder


def wn18rr_slice(n_entities: int, seed: int = 0):
    """Breadth-first region of WN18RR around a random entity, all its triples
    (train+valid+test), renumbered, split 85/15 at random."""
    folder = SHARED_DATA / "wn18rr"
    if not folder.exists():
        unavailable(f"real data missing: {folder}")
    split = load_split(folder)
    triples = split.all_triples()
    nbrs = defaultdict(list)
    for h, _, t in triples.tolist():
        nbrs[h].append(t)
        nbrs[t].append(h)
    rng = np.random.default_rng(seed)
    start = int(rng.choice(triples[:, 0]))
    seen, frontier = {start}, [start]
    while frontier and len(seen) < n_entities:
        nxt = []
        for e in frontier:
            for n in nbrs[e]:
                if n not in seen and len(seen) < n_entities:
                    seen.add(n)
                    nxt.append(n)
        frontier = nxt
    ents = sorted(seen)
    new = {e: i for i, e in enumerate(ents)}
    keep = np.array([h in new and t in new for h, _, t in triples.tolist()])
    sub = np.array([[new[h], r, new[t]] for h, r, t in triples[keep].tolist()], dtype=np.int64)
    sub = sub[rng.permutation(len(sub))]
    n_test = len(sub) * 15 // 100
    names = [split.entities[e] for e in ents]
    return names, split, sub[n_test:], sub[:n_test], sub


def test_one_epoch_beats_random_by_a_wide_margin(tmp_path):
    torch.manual_seed(0)
    names, split, train, test, every = wn18rr_slice(700)
    res = resolve(names, [(split.entities[h], "", split.entities[t]) for h, _, t in split.all_triples().tolist()])
    feats = EntityFeatures(entity_text_embedder(MINILM, tmp_path).embed([res.synsets[n].text() for n in names]))
    filt_all = FilterIndex(every, len(names), split.n_relations)
    model = CompletionModel(ModelConfig(text_dim=feats.text.shape[1], rank=64, hidden=256), len(names), split.n_relations)
    untrained = evaluate(model.scorer(feats), test, filt_all)
    train_model(model, feats, train, FilterIndex(train, len(names), split.n_relations),
                TrainSettings(epochs=1, batch_size=32, negatives=256, lr=5e-3, seed=0, progress=False))
    trained = evaluate(model.scorer(feats), test, filt_all)
    random = random_expected_mrr(len(names))
    assert trained.queries == 2 * len(test) > 100
    assert trained.mrr > 5 * random, (trained, random)
    assert trained.mrr > untrained.mrr and trained.hits_at_10 > untrained.hits_at_10, (trained, untrained)
