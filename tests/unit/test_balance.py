"""Post-hoc logit adjustment (the ``balance`` component) and the classifier's offset buffer."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from continual.balance import balance_classifier, label_prior, logit_adjustment, relation_counts
from continual.methods import ContinualLearner, MethodOptions, parse_method
from extractors.datasets import REExample
from extractors.models import SplitLinear


def _ex(relation: str, i: int = 0) -> REExample:
    return REExample(("a", "b", str(i)), ("a", "PER", 0, 1), ("b", "PER", 1, 2), relation)


def test_label_prior_counts_with_smoothing_and_refuses_unknown_labels():
    counts = relation_counts([_ex("None")] * 5 + [_ex("new")] * 3)
    prior = label_prior(["None", "old", "new"], counts)
    assert torch.allclose(prior, torch.tensor([6 / 11, 1 / 11, 4 / 11]))
    with pytest.raises(ValueError, match="does not have"):
        label_prior(["None"], counts)


def test_offsets_move_from_the_trained_prior_to_the_target():
    labels = ["None", "old", "new"]
    trained = {"None": 49, "old": 1, "new": 49}  # old: a few exemplars in memory
    target = {"None": 99, "old": 99, "new": 99}  # old was as frequent when it was new
    offsets = logit_adjustment(labels, trained, target, tau=0.5)
    assert offsets[1] - offsets[2] == pytest.approx(0.5 * math.log(50 / 2), rel=1e-5)
    assert offsets[0] == pytest.approx(offsets[2])
    # a class rare in its own task stays rare: training already saw it at its natural rate
    assert torch.allclose(logit_adjustment(labels, trained, trained), torch.zeros(3))


def test_adjustment_applies_in_eval_only_grows_and_loads_from_old_versions():
    torch.manual_seed(0)
    clf = SplitLinear(4, 3, 2)
    h_t, h_v = torch.randn(5, 4), torch.randn(5, 3)
    raw = clf.raw(h_t, h_v)
    clf.set_adjustment(torch.tensor([0.0, 2.0]))
    assert torch.allclose(clf(h_t, h_v), raw)  # training mode: the loss sees raw logits
    clf.eval()
    assert torch.allclose(clf(h_t, h_v), raw + torch.tensor([0.0, 2.0]))
    clf.grow(1)
    assert clf.adjustment.tolist() == [0.0, 2.0, 0.0]
    with pytest.raises(ValueError):
        clf.set_adjustment(torch.zeros(2))
    old_version = {k: v for k, v in clf.state_dict().items() if k != "adjustment"}
    fresh = SplitLinear(4, 3, 3)
    fresh.load_state_dict(old_version)  # saved before the buffer existed: no offsets
    assert fresh.adjustment.tolist() == [0.0, 0.0, 0.0]
    fresh.load_state_dict(clf.state_dict())
    assert fresh.adjustment.tolist() == [0.0, 2.0, 0.0]


class _Model(torch.nn.Module):
    """The MRE model's interface as balance_classifier uses it: labels and a SplitLinear."""

    def __init__(self, labels):
        super().__init__()
        self.labels = list(labels)
        self.classifier = SplitLinear(2, 2, len(labels))
        param = torch.nn.Parameter(torch.zeros(1))  # what the gradient modulator reads at a task's start
        self.encoder = SimpleNamespace(text=torch.nn.Linear(1, 1), vision=torch.nn.Linear(1, 1), no_image=param,
                                       keys=SimpleNamespace(text_bias=param, vision_bias=param))


class _Adapter:
    def __init__(self, kind):
        self.kind = kind


def test_balancing_turns_a_prediction_from_the_frequent_new_class_to_the_rare_old_one():
    model = _Model(["None", "old", "new"])
    with torch.no_grad():  # "new" wins by 1 logit on this input
        model.classifier.text.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
        model.classifier.text.bias.zero_()
        model.classifier.vision.weight.zero_()
    model.eval()
    x, v = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2)
    assert model.classifier(x, v).argmax().item() == 2
    trained_on = {"None": 50, "new": 40, "old": 2}  # the rehearsal imbalance
    stream = {"None": 100, "new": 40, "old": 40}  # old was as frequent as new in its own task
    offsets = balance_classifier(model, trained_on, stream)
    assert offsets[1] - offsets[2] == pytest.approx(math.log(41 / 3), rel=1e-5)
    assert model.classifier(x, v).argmax().item() == 1


def test_learner_balances_mre_toward_the_stream_clears_at_the_next_task_and_leaves_mner_alone():
    model = _Model(["None", "old", "new"])
    on = ContinualLearner(parse_method("replay+balance"), _Adapter("mre"), MethodOptions(per_class=2))
    first = [_ex("None", i) for i in range(4)] + [_ex("old", i) for i in range(8)]
    on.after_fit(0, model, first)
    assert on.adjustment[0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)  # nothing shifted yet
    on.end_task(0, model, first, ["old"])
    assert on.stream_counts == {"None": 4, "old": 8}
    on.begin_task(1, model)
    data = [_ex("None")] * 4 + [_ex("new")] * 8
    on.after_fit(1, model, data)
    trained = relation_counts(on.training_data(data))
    assert trained["old"] == 2  # the memory keeps a few exemplars of "old"
    want = logit_adjustment(model.labels, trained, {"None": 8, "old": 8, "new": 8})
    assert on.adjustment[1] == pytest.approx(want.tolist(), abs=1e-4)
    assert on.adjustment[1][1] > on.adjustment[1][2] + 0.5  # the rehearsed class gets the larger offset
    on.begin_task(2, model)  # the next task picks its best epoch on raw logits
    assert model.classifier.adjustment.abs().sum() == 0
    data = [_ex("None"), _ex("new"), _ex("new")]
    for learner in (ContinualLearner(parse_method("replay"), _Adapter("mre"), MethodOptions()),
                    ContinualLearner(parse_method("mspt"), _Adapter("mner"), MethodOptions())):
        learner.after_fit(0, model, data)
        assert learner.adjustment == {} and model.classifier.adjustment.abs().sum() == 0
