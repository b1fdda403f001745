"""A small real training of the zero-shot scorer beats the frozen-prototype baseline on classes it never saw.

Real MNRE samples, the real frozen MiniLM features, the benchmark's first
class split (8 train / 7 validation / 7 test relations; benchmarks/zero_shot),
at most a few dozen samples per class so the test encodes in seconds. The
scorer's epoch and Proto's view are chosen on the validation classes; both
are then scored on the test classes, which neither has seen.
"""
from __future__ import annotations

import random
from collections import defaultdict

import torch

from benchmarks.zero_shot import class_splits, load_mnre
from extractors.zero_shot.baselines import choose_proto_view, proto_scores
from extractors.zero_shot.classes import MNRE_DESCRIPTIONS, class_phrase
from extractors.zero_shot.features import FrozenSampleEncoder
from extractors.zero_shot.scorer import ScorerConfig, ZeroShotScorer
from extractors.zero_shot.training import FitConfig, fit, macro_prf, score_matrix

PER_CLASS = {"train": 30, "validation": 30, "test": 60}


def test_trained_scorer_beats_frozen_prototypes_on_unseen_relations():
    examples, _ = load_mnre()
    split = class_splits(sorted({e.relation for e in examples}), [0])[0]
    by_class = defaultdict(list)
    for ex in examples:
        by_class[ex.relation].append(ex)
    rng = random.Random(0)
    encoder = FrozenSampleEncoder()
    parts = {}
    for part, classes in split.items():
        chosen = [(c, ex) for c in classes for ex in rng.sample(by_class[c], min(PER_CLASS[part], len(by_class[c])))]
        feats = encoder.samples([ex for _, ex in chosen])
        labels = torch.tensor([classes.index(c) for c, _ in chosen])
        vectors = encoder.classes([class_phrase(c, MNRE_DESCRIPTIONS[c]) for c in classes])
        parts[part] = (feats, labels, vectors)
    (x, y, v), (vx, vy, vv), (tx, ty, tv) = parts["train"], parts["validation"], parts["test"]

    result = fit(lambda: ZeroShotScorer(ScorerConfig(text_dim=encoder.text_dim, vision_dim=encoder.vision_dim)),
                 FitConfig(epochs=10, seed=0), x, y, v, vx, vy, vv)
    classes = range(len(split["test"]))
    ours = macro_prf(ty.tolist(), score_matrix(result.scorer, tx, tv).argmax(1).tolist(), classes)["f1"]
    view = choose_proto_view(vx, vy, vv)
    proto = macro_prf(ty.tolist(), proto_scores(tx, tv, view).argmax(1).tolist(), classes)["f1"]
    assert ours > proto, (ours, proto, view, result.best_epoch)
