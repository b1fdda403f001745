"""Entity resolution: precision and recall of merge decisions on alias sets no one here wrote.

For each set of benchmarks/alias_sets.py (countries, cities, nicknames, WordNet
synonyms), the labelled pairs are split by entity into a calibration half and a
test half. On the calibration half the lowest merge threshold with precision >=
0.95 (and at least 10 merges) is chosen; where no threshold reaches it, the
default threshold is used and the set is marked so. The figures reported are on
the test halves: at that threshold, by kind of pair (aliases, homonyms, near
names), at the default threshold, and along a short curve.

Run: python -m benchmarks.entity_resolution   (about 3 min on 2 cores: MiniLM embeds the names and contexts)
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import time
import numpy as np

from extractors.encoders import SentenceEmbedder
from graph_store.resolution.decision import Resolver, ResolverConfig

from .alias_sets import SETS, LabelledPair
from .common import write_result

log = logging.getLogger("benchmarks.entity_resolution")
TARGET_PRECISION = 0.95


def is_test(pair: LabelledPair) -> bool:
    return int(hashlib.sha256(pair.group.encode()).hexdigest(), 16) % 2 == 1


def scores(pairs, decisions, threshold: float) -> dict:
    predicted = np.array([d.merges_at(threshold) for d in decisions])
    truth = np.array([p.same for p in pairs])
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else None, "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "pairs": len(pairs), "same": int(truth.sum()), "merged": int(predicted.sum()), "false_merges": fp}


def calibrate(pairs, decisions, grid: list[float]) -> float | None:
    """The lowest threshold at which calibration precision reaches the target (None: none does)."""
    for t in grid:
        at = scores(pairs, decisions, t)
        if at["precision"] is not None and at["precision"] >= TARGET_PRECISION and at["merged"] >= 10:
            return t
    return None


class MemoEmbed:
    """The encoder, each distinct text embedded once across the calibration grid."""

    def __init__(self, embed) -> None:
        self.embed, self.cache = embed, {}

    def __call__(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.embed(missing)))
        return np.stack([self.cache[t] for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embed = MemoEmbed(SentenceEmbedder())
    started = time.perf_counter()
    data = {name: SETS[name]() for name in args.sets}
    metrics: dict = {"target_precision": TARGET_PRECISION, "default_threshold": ResolverConfig().threshold}
    grid = [round(x, 3) for x in np.arange(0.80, 0.99, 0.005)]
    resolver = Resolver(embed)  # the default context veto (ResolverConfig.context_min)
    for name, pairs in data.items():
        decisions = resolver.decide_many([(p.a, p.b) for p in pairs])
        calib = [(p, d) for p, d in zip(pairs, decisions) if not is_test(p)]
        test = [(p, d) for p, d in zip(pairs, decisions) if is_test(p)]
        threshold = calibrate([p for p, _ in calib], [d for _, d in calib], grid)
        used = threshold if threshold is not None else ResolverConfig().threshold
        ps, ds = [p for p, _ in test], [d for _, d in test]
        metrics[name] = {**scores(ps, ds, used), "threshold": used, "target_reached_on_calibration": threshold is not None,
                         "at_default_threshold": scores(ps, ds, ResolverConfig().threshold),
                         "curve": [{"threshold": t, **scores(ps, ds, t)} for t in (0.85, 0.9, 0.93, 0.96)]}
        for kind in sorted({p.kind for p in ps}):
            sub = [(p, d) for p, d in test if p.kind == kind]
            metrics[name][kind] = scores([p for p, _ in sub], [d for _, d in sub], used)
        metrics[name]["false_merge_examples"] = [
            f"{p.a.name} | {p.b.name} ({d.evidence})" for p, d in test
            if not p.same and d.merges_at(used)][:8]
        log.info("%s: %s", name, {k: v for k, v in metrics[name].items() if not isinstance(v, (dict, list))})
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_result("entity_resolution", metrics, notes=(
        "test halves (split by entity); per-set threshold calibrated on the other halves for precision >= 0.95; "
        "encoder all-MiniLM-L6-v2; see benchmarks/alias_sets.py for the sets and hard negatives"))


if __name__ == "__main__":
    main()
