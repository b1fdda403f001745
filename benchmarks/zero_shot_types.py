"""Zero-shot entity typing on Twitter-2017 (issue #18): what the stream's labeller does for a new type.

The paper's protocol needs more than two unseen types in a split; Twitter-2017 has four (PER, LOC,
ORG, MISC), so it cannot be run (BENCHMARKS.md says so). What can be measured is the production
decision itself, one type at a time: each of the four is in turn "the new type", every entity span
of the split is a span the tagger was unsure of, and a span is typed as the new type when its score
against the type's phrase (name and one-line description) reaches the threshold. Precision, recall
and F1 of that decision, per held-out type, for

- ``proto``: the frozen MiniLM cosine of the span's contextual state (head = tail = the span) and the
  phrase (the prototype baseline);
- ``scorer``: the shipped zero-shot scorer (trained on MNRE relations only, never on a type).

The threshold of each method is chosen on the validation split (best mean F1 over the four leave-one-
out rounds) and reported on test.

    python -m benchmarks.zero_shot_types            # about 3 min on 2 CPU cores (spans are cached)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.common import SHARED_DATA, write_result
from extractors.datasets import NO_RELATION, REExample, read_conll
from extractors.zero_shot.baselines import proto_scores
from extractors.zero_shot.model import ZeroShotClass, ZeroShotModel
from extractors.spans import bio_spans
from extractors.zero_shot.types import TYPE_DESCRIPTIONS

GRID = np.round(np.arange(-0.3, 0.96, 0.01), 2)  # cosines; Proto's fall below 0.1


def spans(path) -> tuple[list[REExample], list[str]]:
    examples, types = [], []
    for ex in read_conll(path):
        for start, end, etype in bio_spans(ex.tags):
            examples.append(REExample(ex.tokens, (start, end), (start, end), NO_RELATION))
            types.append(etype)
    return examples, types


def prf(pred: np.ndarray, gold: np.ndarray) -> dict:
    tp = int((pred & gold).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / gold.sum() if gold.sum() else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "predicted": int(pred.sum())}


def method_scores(model: ZeroShotModel, examples, types: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """method -> held-out type -> [N] score of every span against that type's phrase."""
    feats = model.encoder.samples(examples)
    names = sorted(set(types))
    vectors = model.class_vectors([ZeroShotClass(t, TYPE_DESCRIPTIONS.get(t, "")) for t in names])
    with torch.no_grad():
        by_method = {"proto": proto_scores(feats, vectors, "entities"), "scorer": model.scorer.scores(feats, vectors)}
    return {m: {t: s[:, i].numpy() for i, t in enumerate(names)} for m, s in by_method.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "twitter2017"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.monotonic()
    model = ZeroShotModel.load()
    split = {}
    for name, file in (("valid", "valid.txt"), ("test", "test.txt")):
        examples, types = spans(f"{args.data}/{file}")
        split[name] = (np.array(types), method_scores(model, examples, types))
    metrics: dict = {"types": sorted(set(split["test"][0])), "spans": {k: len(v[0]) for k, v in split.items()},
                     "scorer_version": model.version, "descriptions": TYPE_DESCRIPTIONS}
    for method in ("proto", "scorer"):
        types_v, scores_v = split["valid"][0], split["valid"][1][method]
        mean_f1 = [np.mean([prf(scores_v[t] >= th, types_v == t)["f1"] for t in scores_v]) for th in GRID]
        th = float(GRID[int(np.argmax(mean_f1))])
        types_t, scores_t = split["test"][0], split["test"][1][method]
        per_type = {t: {k: round(v, 4) if isinstance(v, float) else v for k, v in prf(scores_t[t] >= th, types_t == t).items()}
                    for t in scores_t}
        metrics[method] = {"threshold": th, "valid_mean_f1": round(float(max(mean_f1)), 4),
                           "test_mean_f1": round(float(np.mean([v["f1"] for v in per_type.values()])), 4),
                           "test_mean_precision": round(float(np.mean([v["precision"] for v in per_type.values()])), 4),
                           "test": per_type}
        print(json.dumps({method: metrics[method]}), flush=True)
    metrics["wall_seconds"] = round(time.monotonic() - start, 1)
    write_result("zero_shot_types", metrics, notes=(
        "Leave-one-type-out on Twitter-2017: each type in turn is the new type, every gold entity span is a "
        "span the tagger was unsure of, a span is typed as the new type when its score reaches the threshold "
        "(chosen on valid by mean F1 over the four rounds, reported on test). Not the paper's protocol: "
        "four types cannot give a split with more than two unseen ones."))


if __name__ == "__main__":
    main()
