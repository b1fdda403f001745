"""The task-kind registry: names on disk -> everything that differs between MRE and MNER."""
from __future__ import annotations

import copy

import pytest
import torch

from continual.memory import example_to_json
from extractors.datasets import NERExample, REExample
from extractors.kinds import KINDS, UnknownKind, get_kind, kind_of_benchmark
from extractors.store import ModelStore
from extractors.tasks import NERTask, RETask


@pytest.fixture(scope="module")
def encoder_and_tokenizer():
    from extractors.encoders import RANDOM_VISION, EncoderSpec, build_encoder

    torch.manual_seed(0)
    return build_encoder(EncoderSpec(vision=RANDOM_VISION))


def test_the_registry_knows_the_two_on_disk_names():
    assert set(KINDS) == {"mre", "mner"}
    assert {get_kind(k).name for k in KINDS} == set(KINDS)
    assert get_kind(get_kind("mre")) is get_kind("mre")  # an entry passes through
    assert kind_of_benchmark("imner") is get_kind("mner") and kind_of_benchmark("imre") is get_kind("mre")


@pytest.mark.parametrize("name", ["ner", "MRE", "", None])
def test_an_unknown_kind_is_refused_naming_the_known_ones(name, tmp_path):
    with pytest.raises(UnknownKind) as err:
        get_kind(name)
    assert "mre" in str(err.value) and "mner" in str(err.value) and repr(name) in str(err.value)
    with pytest.raises(ValueError, match="known kinds: .*mre.*mner"):  # the store asks the registry
        ModelStore(tmp_path).current_version(name)
    with pytest.raises(UnknownKind, match="imre"):
        kind_of_benchmark("imx")


@pytest.mark.parametrize("name, task_class, label_attr, per_class_key, new", [
    ("mre", RETask, "labels", "per_relation", ["/per/per/peer", "/per/org/member_of"]),
    ("mner", NERTask, "tags", "per_type", ["B-PER", "I-PER", "B-LOC", "I-LOC"]),
])
def test_each_kind_builds_its_task_and_grows_a_model(name, task_class, label_attr, per_class_key, new,
                                                     encoder_and_tokenizer):
    encoder, tokenizer = encoder_and_tokenizer
    kind = get_kind(name)
    task = kind.task(tokenizer)
    assert type(task) is task_class and task.kind == name
    model = task.build(copy.deepcopy(encoder), [kind.no_label])
    classes = ["PER", "LOC"] if name == "mner" else new
    assert kind.new_labels(classes) == new
    kind.grow(model, kind.new_labels(classes))
    assert kind.labels(model) == getattr(model, label_attr) == [kind.no_label, *new]
    assert kind.classes_of(kind.labels(model)) == set(classes)  # "nothing" is no class
    kind.grow(model, new[:2])  # labels it has already: nothing changes
    assert len(kind.labels(model)) == 1 + len(new)
    example = (REExample(("Ann", "met", "Bob"), (0, 1), (2, 3), new[0]) if name == "mre"
               else NERExample(("Ann", "met", "Bob"), ("B-PER", "O", "B-PER")))
    scores = kind.evaluate(task, model, [example], per_class=True)  # what `mkg evaluate` reports per class
    assert kind.per_class_key == per_class_key and set(scores[per_class_key]) <= set(classes)


def test_examples_round_trip_and_name_their_classes():
    re_kind, ner_kind = get_kind("mre"), get_kind("mner")
    pair = REExample(("Obama", "visits", "Paris"), (0, 1), (2, 3), "/per/loc/place_of_residence", "img.jpg")
    none = REExample(("a", "b"), (0, 1), (1, 2), re_kind.no_label)
    sent = NERExample(("Obama", "visits", "New", "York"), ("B-PER", "O", "B-LOC", "I-LOC"))
    assert re_kind.example_from_dict(example_to_json(pair)) == pair
    assert ner_kind.example_from_dict(example_to_json(sent)) == sent
    assert re_kind.example_classes(pair) == {"/per/loc/place_of_residence"} and re_kind.example_classes(none) == set()
    assert ner_kind.example_classes(sent) == {"PER", "LOC"}
    # what a model that knows only some classes can learn: other relations dropped, other types made O
    assert re_kind.fit_label_space([pair, none], {"/per/per/peer"}) == [none]
    assert ner_kind.fit_label_space([sent], {"LOC"})[0].tags == ("O", "O", "B-LOC", "I-LOC")


def test_scores_count_only_the_kept_classes():
    re_kind, ner_kind = get_kind("mre"), get_kind("mner")
    gold, pred = ["a", "b", "None", "b"], ["a", "a", "b", "b"]
    assert re_kind.restrict(gold, {"a"}) == ["a", "None", "None", "None"]
    torch.testing.assert_close(re_kind.f1(re_kind.restrict(gold, {"a"}), re_kind.restrict(pred, {"a"})),
                               100 * 2 * 0.5 / 1.5, rtol=1e-6, atol=1e-6)  # P 1/2, R 1/1
    assert set(re_kind.per_class(gold, pred)) == {"a", "b"}
    assert re_kind.per_class(gold, pred)["b"]["support"] == 2
    tags_gold = [["B-PER", "O", "B-LOC"]]
    tags_pred = [["B-PER", "O", "O"]]
    assert ner_kind.restrict(tags_gold, {"LOC"}) == [["O", "O", "B-LOC"]]
    assert ner_kind.f1(ner_kind.restrict(tags_gold, {"PER"}), ner_kind.restrict(tags_pred, {"PER"})) == 100.0
    assert ner_kind.per_class(tags_gold, tags_pred)["LOC"]["support"] == 1
