"""Build the zero-shot scorer shipped in the package (``extractors/shipped/zero_shot``).

    python -m extractors.zero_shot.ship [--data ../shared/data] [--out extractors/shipped/zero_shot]

Two stages, both on MNRE (its train file to train, its val file to calibrate;
the test file is never read):

1. **Calibration.** Seven relations chosen at random (fixed seed) are held
   out; a scorer trains on the other fifteen, its epoch chosen on the
   held-out relations' val-file samples. Then the threshold: production asks
   the scorer about pairs the supervised model called ``None``, so the
   held-out relations' val-file samples are mixed with every ``None``
   sample of the val file, each is scored against the held-out relations, and
   the threshold with the best F1 of "labelled, and correctly" is kept, with
   its precision and recall.
2. **Final.** A scorer trains on all 22 relations for the epochs stage 1
   chose, and is saved with stage 1's threshold and figures.
"""
from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import torch

from ..datasets import NO_RELATION, read_re
from ..training import seed_everything
from .classes import MNRE_DESCRIPTIONS, class_phrase
from .features import FrozenSampleEncoder, cached_samples
from .model import SHIPPED_ZERO_SHOT, ZeroShotModel
from .scorer import ScorerConfig, ZeroShotScorer
from .training import FitConfig, fit, score_matrix

log = logging.getLogger(__name__)
SEED = 42
HELD_OUT = 7
VARIANT = {"vmoe": True, "contrastive": False}  # benchmarks/zero_shot: the variant validation preferred
CACHE = Path("var/cache/zero_shot")


def threshold_curve(best_scores: torch.Tensor, correct: torch.Tensor, positives: int) -> list[dict]:
    """Precision, recall and F1 of "best score >= t and the class is right" at each candidate t."""
    out = []
    for t in torch.unique(best_scores).tolist():
        taken = best_scores >= t
        tp = int((taken & correct).sum())
        p = tp / max(1, int(taken.sum()))
        r = tp / max(1, positives)
        out.append({"threshold": t, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=SHIPPED_ZERO_SHOT)
    parser.add_argument("--epochs", type=int, default=30, help="stage 1's most epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    train = read_re(args.data / "mnre" / "mnre_train.txt")
    val = read_re(args.data / "mnre" / "mnre_val.txt")
    encoder = FrozenSampleEncoder()
    train_feats = cached_samples(train, encoder, CACHE, "mnre_train_all")
    val_feats = cached_samples(val, encoder, CACHE, "mnre_val_all")
    relations = sorted({e.relation for e in train} - {NO_RELATION})
    vectors = encoder.classes([class_phrase(r, MNRE_DESCRIPTIONS.get(r)) for r in relations])
    vec = {r: vectors[i] for i, r in enumerate(relations)}
    config = ScorerConfig(text_dim=encoder.text_dim, vision_dim=encoder.vision_dim, **VARIANT)

    def rows(examples, classes):
        return [i for i, e in enumerate(examples) if e.relation in classes]

    def labelled(feats, examples, classes):
        idx = rows(examples, classes)
        return feats.take(idx), torch.tensor([classes.index(examples[i].relation) for i in idx])

    shuffled = list(relations)
    random.Random(SEED).shuffle(shuffled)
    held, seen = sorted(shuffled[:HELD_OUT]), sorted(shuffled[HELD_OUT:])
    x, y = labelled(train_feats, train, seen)
    vx, vy = labelled(val_feats, val, held)
    stage1 = fit(lambda: ZeroShotScorer(config), FitConfig(epochs=args.epochs, seed=SEED), x, y,
                 torch.stack([vec[r] for r in seen]), vx, vy, torch.stack([vec[r] for r in held]), progress=True)
    none_idx = [i for i, e in enumerate(val) if e.relation == NO_RELATION]
    pool = val_feats.take(rows(val, held) + none_idx)
    scores = score_matrix(stage1.scorer, pool, torch.stack([vec[r] for r in held]))
    best_scores, best = scores.max(1)
    gold = torch.cat([vy, torch.full((len(none_idx),), -1)])
    curve = threshold_curve(best_scores, best == gold, len(vy))
    chosen = max(curve, key=lambda c: c["f1"])
    log.info("stage 1: epoch %d, threshold %.3f (precision %.3f, recall %.3f)", stage1.best_epoch,
             chosen["threshold"], chosen["precision"], chosen["recall"])

    seed_everything(SEED)
    x, y = labelled(train_feats, train, relations)
    final = fit(lambda: ZeroShotScorer(config), FitConfig(epochs=stage1.best_epoch + 1, seed=SEED), x, y,
                torch.stack([vec[r] for r in relations]), vx, vy, torch.stack([vec[r] for r in held]))
    # ``fit`` keeps its best epoch on vx (classes now seen): take the last epoch instead, as stage 1 chose
    final.scorer.load_state_dict(final.last_state)
    version = f"zs-mnre-{stage1.best_epoch + 1}ep-s{SEED}"
    model = ZeroShotModel(final.scorer, version, round(chosen["threshold"], 4), encoder.text_name, relations)
    metrics = {"calibration": {"held_out": held, "seen": seen, "best_epoch": stage1.best_epoch,
                               "val_macro_f1_held_out": stage1.best_val_macro_f1, **chosen,
                               "pool": {"held_out_samples": len(vy), "none_samples": len(none_idx)}},
               "variant": VARIANT, "trained_on": relations, "train_samples": len(y), "seed": SEED}
    path = model.save(args.out, metrics)
    log.info("saved %s to %s", version, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
