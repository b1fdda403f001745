"""Test-set quality of the current MRE/MNER models, next to spaCy and majority baselines.

Train first (commands in BENCHMARKS.md), then:
    python -m benchmarks.extractor_quality [--models var/models]
Scores: MRE micro-F1 excluding None on MNRE test; MNER entity-level F1 on
Twitter-2017 test (text only: these sets ship no images).
"""
from __future__ import annotations

import argparse

from extractors.datasets import read_re
from extractors.metrics import majority_baseline_re
from extractors.run import evaluate, evaluate_spacy_ner
from extractors.kinds import KINDS, get_kind
from extractors.store import ModelStore

from .common import SHARED_DATA, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="var/models")
    args = parser.parse_args()
    store = ModelStore(args.models, shipped=True)
    metrics: dict = {}
    for kind in KINDS:
        result = evaluate(kind, SHARED_DATA / get_kind(kind).dataset, args.models, shipped=True)
        cfg = store.config(kind, result["version"])
        train_metrics = store.metrics(kind, result["version"])
        metrics[kind] = {"test_precision": result["precision"], "test_recall": result["recall"],
                         "test_f1": result["f1"], "val_f1": train_metrics["val"]["f1"],
                         "best_epoch": train_metrics["best_epoch"], "version": result["version"],
                         "train_config": cfg["train_config"], "encoder": cfg["encoder"],
                         # P/R/F1 and support of every relation (MRE) / entity type (MNER)
                         "per_class": result[get_kind(kind).per_class_key]}
    spacy = evaluate_spacy_ner(SHARED_DATA / "twitter2017")
    metrics["spacy_ner"] = {"test_precision": spacy["precision"], "test_recall": spacy["recall"], "test_f1": spacy["f1"],
                            "per_class": spacy["per_type"]}
    train = [e.relation for e in read_re(SHARED_DATA / "mnre" / "mnre_train.txt")]
    test = [e.relation for e in read_re(SHARED_DATA / "mnre" / "mnre_test.txt")]
    metrics["mre_majority_baseline_f1"] = majority_baseline_re(train, test)["f1"]
    write_result("extractor_quality", metrics,
                 notes="text only (no images exist for MNRE/Twitter-2017); model selection on val, never on test")


if __name__ == "__main__":
    main()
