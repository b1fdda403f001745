"""The promotion gate (continual/gate.py): every branch of ``decide``, boundaries included."""
from __future__ import annotations

import pytest

from continual.gate import GatePolicy, decide

POLICY = GatePolicy(max_old_drop=5.0, min_new_f1=30.0)


def test_first_model_has_no_old_classes_and_passes_on_new_f1():
    d = decide(POLICY, None, None, 42.0)
    assert d.passed and d.reasons == []
    assert (d.old_before, d.old_after, d.new_after) == (None, None, 42.0)


def test_small_drop_and_good_new_f1_pass():
    d = decide(POLICY, 80.0, 76.0, 55.0)  # 4 points lost, 5 allowed
    assert d.passed and d.reasons == []


def test_drop_exactly_at_the_limit_and_new_f1_exactly_at_the_minimum_pass():
    d = decide(POLICY, 80.0, 75.0, 30.0)
    assert d.passed, d.reasons


def test_too_large_a_drop_is_refused():
    d = decide(POLICY, 80.0, 74.0, 55.0)  # 6 points lost
    assert not d.passed
    assert len(d.reasons) == 1 and d.reasons[0].startswith("old classes dropped 6.00 F1 points")


def test_new_classes_below_min_new_f1_are_refused_even_without_forgetting():
    d = decide(POLICY, 80.0, 81.0, 29.99)  # old classes even improved
    assert not d.passed
    assert len(d.reasons) == 1 and d.reasons[0].startswith("new classes reached F1 29.99, below the required 30.00")


def test_min_new_f1_refuses_the_first_model_too():
    d = decide(POLICY, None, None, 10.0)
    assert not d.passed and len(d.reasons) == 1 and "below the required" in d.reasons[0]


def test_both_failures_give_both_reasons():
    d = decide(POLICY, 80.0, 60.0, 5.0)
    assert not d.passed
    assert [r.split()[0] for r in d.reasons] == ["old", "new"]


@pytest.mark.parametrize("old_before,old_after", [(80.0, None), (None, 10.0)])
def test_no_drop_check_without_both_old_scores(old_before, old_after):
    d = decide(POLICY, old_before, old_after, 50.0)
    assert d.passed and d.reasons == []


def test_policy_thresholds_are_used_not_the_defaults():
    strict = GatePolicy(max_old_drop=1.0, min_new_f1=90.0)
    d = decide(strict, 80.0, 78.0, 85.0)
    assert not d.passed and len(d.reasons) == 2
    lax = GatePolicy(max_old_drop=50.0, min_new_f1=0.0)
    assert decide(lax, 80.0, 40.0, 0.0).passed


def test_decision_as_dict_round_trips_the_fields():
    d = decide(POLICY, 80.0, 74.0, 55.0)
    assert d.as_dict() == {"passed": False, "old_before": 80.0, "old_after": 74.0, "new_after": 55.0,
                           "reasons": d.reasons}
