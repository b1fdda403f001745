"""P/R/F1 per relation (MRE) and per entity type (MNER), with support counts."""
from __future__ import annotations

import pytest

from extractors.metrics import ner_entity_prf, ner_per_type, re_micro_prf, re_per_relation


def test_per_relation_scores_and_support():
    gold = ["/per/per/peer", "/per/per/peer", "/per/per/peer", "/per/org/member_of", "None", "None"]
    pred = ["/per/per/peer", "/per/per/peer", "None", "/per/per/peer", "/per/org/member_of", "None"]
    per = re_per_relation(gold, pred)
    assert set(per) == {"/per/per/peer", "/per/org/member_of"}  # None is not a relation
    peer = per["/per/per/peer"]
    assert peer["support"] == 3 and peer["predicted"] == 3
    assert peer["precision"] == pytest.approx(200 / 3) and peer["recall"] == pytest.approx(200 / 3)
    member = per["/per/org/member_of"]
    assert member == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 1}
    # the micro average is the support-weighted pool of the same counts
    micro = re_micro_prf(gold, pred)
    assert micro["precision"] == pytest.approx(100 * 2 / 4) and micro["recall"] == pytest.approx(100 * 2 / 4)


def test_a_relation_only_predicted_has_no_support_and_zero_precision():
    per = re_per_relation(["None", "/per/per/peer"], ["/loc/loc/contain", "/per/per/peer"])
    assert per["/loc/loc/contain"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}
    assert per["/per/per/peer"]["f1"] == 100.0


def test_per_entity_type_scores_match_seqeval_and_count_support():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    per = ner_per_type(gold, pred)
    assert per["PER"] == {"precision": 100.0, "recall": 50.0, "f1": pytest.approx(200 / 3), "support": 2,
                          "predicted": 1}
    assert per["LOC"]["support"] == 1 and per["LOC"]["recall"] == 0.0 and per["LOC"]["predicted"] == 0
    assert per["ORG"]["support"] == 1 and per["ORG"]["predicted"] == 2 and per["ORG"]["precision"] == 50.0
    from seqeval.metrics import classification_report

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    for etype, scores in per.items():
        assert scores["f1"] == pytest.approx(100 * report[etype]["f1-score"])
        assert scores["support"] == report[etype]["support"]
    overall = ner_entity_prf(gold, pred)
    assert overall["recall"] == pytest.approx(100 * 2 / 4)
