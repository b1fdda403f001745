"""Continual-learning mechanics: growth, memory, distillation, modulation, scores, reports.

Real MiniLM, random-init vision (the benchmark sets ship no images, so the
vision weights do not matter here), real data slices; no training runs.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from helpers import SHARED_DATA, unavailable

from continual.distillation import AttentionDistiller, attention_distillation, pooled_attention_distance
from continual.evaluation import score_after_task
from continual.memory import RehearsalMemory, kmeans_prototypes, model_features
from continual.methods import MethodSpec, parse_method
from continual.modulation import GradientModulator, coefficient, contribution_scores, modality_parameters
from continual.objectives import forward_parts
from continual.report import write_report
from continual.streams import balanced_sample, imner_stream, imre_stream, stratified_sample
from extractors.datasets import NERExample, REExample, read_re
from extractors.features import encode_ner, encode_re
from extractors.models import MNERModel, MREModel

IMRE = SHARED_DATA / "imre"


@pytest.fixture(scope="module")
def encoder_and_tokenizer():
    from extractors.encoders import RANDOM_VISION, EncoderSpec, build_encoder
    from extractors.features import register_markers

    torch.manual_seed(0)
    encoder, tok = build_encoder(EncoderSpec(vision=RANDOM_VISION))
    register_markers(tok)
    return encoder, tok


@pytest.fixture
def mre_model(encoder_and_tokenizer):
    encoder, _ = encoder_and_tokenizer
    return MREModel(copy.deepcopy(encoder), ["None", "/per/per/peer", "/per/misc/religion"])


@pytest.fixture
def mner_model(encoder_and_tokenizer):
    encoder, _ = encoder_and_tokenizer
    return MNERModel(copy.deepcopy(encoder), ["O", "B-PER", "I-PER"])


def re_slice(n: int = 16) -> list[REExample]:
    if not IMRE.exists():
        unavailable(f"real data missing: {IMRE}")
    return balanced_sample(read_re(IMRE / "sep10" / "ours_train_0.txt"), n, lambda e: e.relation)


# -- class-incremental growth ------------------------------------------------------


def test_mre_classifier_growth_keeps_old_rows(mre_model):
    old_t = mre_model.classifier.text.weight.detach().clone()
    old_b = mre_model.classifier.text.bias.detach().clone()
    old_v = mre_model.classifier.vision.weight.detach().clone()
    mre_model.add_labels(["/per/org/member_of", "/per/per/peer", "/per/per/charges"])  # peer is known
    assert mre_model.labels == ["None", "/per/per/peer", "/per/misc/religion", "/per/org/member_of", "/per/per/charges"]
    assert mre_model.classifier.text.weight.shape[0] == 5 and mre_model.classifier.vision.weight.shape[0] == 5
    assert torch.equal(mre_model.classifier.text.weight[:3], old_t)
    assert torch.equal(mre_model.classifier.text.bias[:3], old_b)
    assert torch.equal(mre_model.classifier.vision.weight[:3], old_v)


def test_mner_growth_keeps_emissions_and_crf(mner_model, encoder_and_tokenizer):
    m = mner_model
    crf = m.crf
    with torch.no_grad():  # pretend training moved these
        crf.transitions[1, 2] = 0.37
        crf.transitions[2, 0] = -0.21
        crf.start_transitions[1] = 0.2
        crf.end_transitions[2] = -0.3
    old_trans = crf.transitions.detach().clone()
    old_start, old_end = crf.start_transitions.detach().clone(), crf.end_transitions.detach().clone()
    old_emit = m.emissions.text.weight.detach().clone()
    m.add_tags(["B-LOC", "I-LOC"])
    assert m.tags == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    new = m.crf
    assert new.num_tags == 5 and m.emissions.text.weight.shape[0] == 5
    assert any(p is new.transitions for p in m.parameters())  # the new CRF is trained
    assert torch.equal(m.emissions.text.weight[:3], old_emit)
    assert torch.equal(new.transitions[:3, :3], old_trans)
    assert torch.equal(new.start_transitions[:3], old_start) and torch.equal(new.end_transitions[:3], old_end)
    tag = {t: i for i, t in enumerate(m.tags)}
    forbidden = [("O", "I-LOC"), ("B-PER", "I-LOC"), ("I-PER", "I-LOC"), ("I-LOC", "I-PER"), ("B-LOC", "I-PER")]
    for a, b in forbidden:
        assert new.transitions[tag[a], tag[b]] == -1e4, (a, b)
    for a, b in [("B-LOC", "I-LOC"), ("I-LOC", "I-LOC"), ("O", "B-LOC"), ("I-LOC", "O"), ("B-PER", "B-LOC")]:
        assert new.transitions[tag[a], tag[b]] > -1e3, (a, b)
    assert new.start_transitions[tag["I-LOC"]] == -1e4 and new.start_transitions[tag["B-LOC"]] > -1e3
    # the grown model decodes into the grown tag set
    _, tok = encoder_and_tokenizer
    m.eval()
    paths = m.decode(encode_ner(tok, [["Obama", "visited", "Paris"]], None))
    assert len(paths[0]) == 3 and set(paths[0]) <= set(m.tags)


# -- task streams -------------------------------------------------------------------


def test_imre_stream_grows_the_label_space():
    if not IMRE.exists():
        unavailable(f"real data missing: {IMRE}")
    stream = imre_stream("sep10", n_tasks=3, limit=30, test_limit=40)
    assert [t.new_classes for t in stream.tasks] == [
        ["/per/misc/religion", "/per/per/peer"], ["/per/org/member_of", "/per/per/charges"],
        ["/loc/loc/contain", "/per/per/siblings"]]
    assert stream.labels_upto(2) == ["None", *stream.classes_upto(2)] and len(stream.labels_upto(2)) == 7
    for k, task in enumerate(stream.tasks):
        assert len(task.train) == 30 and len(task.test) <= 40
        assert {e.relation for e in task.train} == {"None", *task.new_classes}  # the rare class is kept
        assert {e.relation for e in task.test} <= {"None", *stream.classes_upto(k)}
    full = imre_stream("sep5", n_tasks=2)
    assert len(full.tasks[0].new_classes) == 4
    assert len(full.tasks[1].test) > len(full.tasks[0].test)  # cumulative test sets


def test_imner_stream_orders_and_tags():
    root = SHARED_DATA / "imner"
    if not root.exists():
        unavailable(f"real data missing: {root}")
    plom = imner_stream("PLOM", limit=20, test_limit=20)
    polm = imner_stream("POLM", n_tasks=3, limit=20)
    assert [t.new_classes for t in plom.tasks] == [["PER"], ["LOC"], ["ORG"], ["MISC"]]
    assert [t.new_classes for t in polm.tasks] == [["PER"], ["ORG"], ["LOC"]]
    assert plom.tasks[1].new_labels == ["B-LOC", "I-LOC"]
    assert plom.labels_upto(1) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert {t for e in plom.tasks[1].train for t in e.tags} <= {"O", "B-LOC", "I-LOC"}  # only task 1's type


def test_balanced_sample_takes_turns():
    items = ["a"] * 50 + ["b"] * 3 + ["c"] * 20
    sample = balanced_sample(items, 9, key=lambda x: x, seed=1)
    assert sorted(sample) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert balanced_sample(items, 100) == items


def test_stratified_sample_keeps_each_class_share():
    items = ["None"] * 70 + ["a"] * 20 + ["b"] * 8 + ["c"] * 2
    sample = stratified_sample(items, 20, key=lambda x: x, seed=1)
    counts = {c: sample.count(c) for c in ("None", "a", "b", "c")}
    # quotas 14, 4, 1.6, 0.4: b rounds up (largest remainder); c keeps one, taken from the largest (None)
    assert counts == {"None": 13, "a": 4, "b": 2, "c": 1}
    assert stratified_sample(items, 20, key=lambda x: x, seed=1) == sample  # seeded
    assert stratified_sample(items, 200, key=lambda x: x) == items
    # the file order is kept among the chosen examples
    numbered = list(enumerate(items))
    chosen = stratified_sample(numbered, 30, key=lambda x: x[1], seed=2)
    assert [i for i, _ in chosen] == sorted(i for i, _ in chosen) and len(chosen) == 30


def test_sliced_imre_test_sets_keep_the_natural_share_of_none():
    """Evaluation subsets follow the file's class distribution (None included); training
    subsets let the classes take turns."""
    if not IMRE.exists():
        unavailable(f"real data missing: {IMRE}")
    full = read_re(IMRE / "sep10" / "ours_test_1.txt")
    stream = imre_stream("sep10", n_tasks=2, limit=30, val_limit=40, test_limit=200)
    test = stream.tasks[1].test
    assert len(test) == 200
    for rel in {e.relation for e in full}:
        share = sum(e.relation == rel for e in full) / len(full)
        assert abs(sum(e.relation == rel for e in test) - 200 * share) <= 1, rel
    none_share = sum(e.relation == "None" for e in full) / len(full)
    val = stream.tasks[1].val
    assert abs(sum(e.relation == "None" for e in val) - len(val) * none_share) <= 3
    train = stream.tasks[1].train
    assert sum(e.relation == "None" for e in train) == 10  # three classes taking turns: 10 each


# -- rehearsal memory ---------------------------------------------------------------


def _re(rel: str, i: int) -> REExample:
    return REExample(("w", str(i), "x"), (0, 1), (2, 3), rel, f"{i}.jpg")


def test_random_memory_keeps_a_fixed_number_per_class(tmp_path):
    data = [_re("a", i) for i in range(10)] + [_re("b", i) for i in range(3)] + [_re("None", i) for i in range(9)]
    mem = RehearsalMemory("mre", per_class=6, strategy="random", seed=3)
    mem.add_task(0, ["a", "b"], data)
    assert mem.counts() == {"a": 6, "b": 3}  # None is shared, not a class of the task
    assert all(e.relation == "a" for e in mem.exemplars["a"])
    again = RehearsalMemory("mre", per_class=6, strategy="random", seed=3)
    again.add_task(0, ["a", "b"], data)
    assert again.exemplars == mem.exemplars  # seeded
    mem.add_task(1, ["c"], [_re("c", i) for i in range(8)])
    assert mem.counts() == {"a": 6, "b": 3, "c": 6} and len(mem.examples()) == 15
    path = mem.save(tmp_path)
    assert path.name == "memory.json" and json.loads(path.read_text())["classes"]["c"]["task"] == 1
    loaded = RehearsalMemory.load(tmp_path)
    assert loaded.exemplars == mem.exemplars and loaded.strategy == "random" and loaded.task_of == mem.task_of


def test_kmeans_prototypes_pick_one_example_per_mode():
    feats = torch.tensor([[1.0, 0, 0], [1, 0.2, 0], [1, -0.2, 0], [0, 1, 0], [0, 1, 0.3], [0, 1, -0.3]])
    assert sorted(kmeans_prototypes(feats, 2, seed=0)) == [0, 3]
    assert sorted(kmeans_prototypes(feats, 10)) == list(range(6))
    assert len(set(kmeans_prototypes(torch.randn(40, 8), 6, seed=1))) == 6


def test_prototype_memory_on_model_features(mre_model, encoder_and_tokenizer):
    from extractors.kinds import get_kind

    _, tok = encoder_and_tokenizer
    task = get_kind("mre").task(tok)
    data = re_slice(24)
    feats = model_features(task, mre_model)
    assert feats(data[:5]).shape == (5, 3 * mre_model.encoder.text_dim)
    mem = RehearsalMemory("mre", per_class=6, strategy="prototype")
    mem.add_task(0, ["/per/per/peer", "/per/misc/religion"], data, feats)
    counts = mem.counts()
    assert counts["/per/per/peer"] == 6 and counts["/per/misc/religion"] == 6
    assert len(set(mem.exemplars["/per/per/peer"])) == 6
    with pytest.raises(ValueError):
        RehearsalMemory("mre", strategy="prototype").add_task(0, ["a"], data)


def test_mner_memory_classes_are_entity_types():
    data = [NERExample(("Obama", "in", "Paris"), ("B-PER", "O", "B-LOC")), NERExample(("hi",), ("O",)),
            NERExample(("Merkel",), ("B-PER",))]
    mem = RehearsalMemory("mner", per_class=6)
    mem.add_task(0, ["PER"], data)
    mem.add_task(1, ["LOC"], data)
    assert mem.counts() == {"PER": 2, "LOC": 1} and len(mem.examples()) == 2  # a sentence is stored once
    assert RehearsalMemory.from_dict(json.loads(json.dumps(mem.to_dict()))).exemplars == mem.exemplars


# -- attention distillation ---------------------------------------------------------


def test_pooled_attention_distance_by_hand():
    old = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])  # [B=1, H=1, Q=2, K=2]
    new = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])
    # height pooling: old [2, 0], new [1.5, 0.5]; only the lost 0.5 on key 0 counts, / 2 queries
    assert pooled_attention_distance(old, new).item() == pytest.approx(0.25)
    assert pooled_attention_distance(old, old).item() == 0.0
    # a padded second query does not count
    assert pooled_attention_distance(old, new, torch.tensor([[True, False]])).item() == pytest.approx(0.5)


def test_only_withdrawn_attention_is_penalised():
    """The ReLU's direction, on pooled maps that are not both normalised (for softmax rows the
    two directions coincide: see the next test), so relu(new - old) would fail here."""
    old = torch.tensor([[[[0.5, 0.0]]]])  # [B=1, H=1, Q=1, K=2]
    gained = torch.tensor([[[[0.5, 0.5]]]])  # attends to a new key, withdraws nothing
    withdrawn = torch.tensor([[[[0.1, 0.0]]]])  # withdraws 0.4 from key 0, gains nothing
    assert pooled_attention_distance(old, gained).item() == 0.0
    assert pooled_attention_distance(old, withdrawn).item() == pytest.approx(0.4)


def _half_l1(old: torch.Tensor, new: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """0.5 * L1 distance of the height-pooled maps, normalised as the distillation loss is."""
    m = query_mask[:, None, :, None].to(new.dtype)
    diff = ((old - new) * m).sum(-2).abs().sum(-1)  # [B, H]
    return (0.5 * diff / m.sum(-2).squeeze(-1)).mean()


def test_the_distillation_on_softmax_rows_is_half_the_l1_distance():
    """Science hygiene: every attention row sums to 1, so the pooled old and new maps have the same
    total and what one withdraws the other gains: sum ReLU(old - new) = sum ReLU(new - old) =
    0.5 * L1. The paper's "asymmetric" loss is the symmetric L1 distance in value and in gradient (w.r.t.
    the logits, which is what training sees)."""
    gen = torch.Generator().manual_seed(0)
    b, h, q, k = 3, 4, 7, 9
    old = torch.softmax(torch.randn(b, h, q, k, generator=gen) * 2, -1)
    mask = torch.ones(b, q, dtype=torch.bool)
    mask[1, 5:] = False  # padded queries
    mask[2, 3:] = False
    logits = (torch.randn(b, h, q, k, generator=gen) * 2).requires_grad_()

    def value_and_grad(loss_fn):
        logits.grad = None
        value = loss_fn(old, torch.softmax(logits, -1), mask)
        value.backward()
        return value.detach(), logits.grad.clone()

    asym, asym_grad = value_and_grad(pooled_attention_distance)
    half_l1, half_l1_grad = value_and_grad(_half_l1)
    flipped, flipped_grad = value_and_grad(lambda o, n, m: pooled_attention_distance(n, o, m))
    assert asym.item() > 0.05  # a real difference, not two zeros
    torch.testing.assert_close(asym, half_l1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(asym, flipped, rtol=1e-5, atol=1e-6)
    assert asym_grad.abs().sum() > 0
    torch.testing.assert_close(asym_grad, half_l1_grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(asym_grad, flipped_grad, rtol=1e-4, atol=1e-6)


def test_vision_distillation_with_rows_sharing_images():
    """The entity pairs of one post share its image (``image_index``: row -> image), so
    ``has_image`` is per image while the attention maps are per row."""
    from extractors.fusion import NO_IMAGE_TOKENS, StreamOutput

    gen = torch.Generator().manual_seed(3)
    length = 1 + NO_IMAGE_TOKENS + 3

    def out(attn):
        return StreamOutput(torch.zeros(3, 2, 4), torch.zeros(3, length, 4), [], [attn])

    old = torch.softmax(torch.randn(3, 2, length, length, generator=gen), -1)
    new = torch.softmax(torch.randn(3, 2, length, length, generator=gen), -1)
    has_image, index = torch.tensor([True, False]), torch.tensor([0, 0, 1])  # rows 0-1: image 0; row 2: none
    shared = attention_distillation(out(old), out(new), torch.ones(3, 2), has_image, index)
    per_row = attention_distillation(out(old), out(new), torch.ones(3, 2), torch.tensor([True, True, False]))
    torch.testing.assert_close(shared, per_row, rtol=1e-5, atol=1e-6)
    all_images = attention_distillation(out(old), out(new), torch.ones(3, 2), torch.tensor([True, True, True]))
    assert abs(shared.item() - all_images.item()) > 1e-4  # row 2's padded queries are really masked


def test_distillation_is_zero_until_the_model_moves_and_positive_after(mre_model, encoder_and_tokenizer):
    _, tok = encoder_and_tokenizer
    batch = encode_re(tok, re_slice(8), {l: i for i, l in enumerate(mre_model.labels)})
    mre_model.eval()  # no dropout: the model's maps are a function of its weights
    distiller = AttentionDistiller(lam=1.0)
    first = distiller.loss(batch, mre_model.representations(batch)[2])
    assert first.item() == 0.0  # task 1: no teacher, no term
    # the teacher is the model as task 1 left it: the real computation against it is zero because
    # nothing has moved yet (not by construction) ...
    distiller.snapshot(mre_model)
    distiller.task = 1
    assert all(not p.requires_grad for p in distiller.old.parameters())
    unmoved = distiller.loss(batch, mre_model.representations(batch)[2])
    torch.testing.assert_close(unmoved, torch.zeros(()), rtol=0, atol=1e-6)
    with torch.no_grad():  # ... and learning task 2 moves the interaction layers
        mre_model.encoder.keys.keys.add_(torch.randn_like(mre_model.encoder.keys.keys))
        mre_model.encoder.keys.text_bias.add_(torch.randn_like(mre_model.encoder.keys.text_bias))
    loss = distiller.loss(batch, mre_model.representations(batch)[2])
    assert loss.item() > 1e-3
    loss.backward()
    assert mre_model.encoder.keys.keys.grad is not None and mre_model.encoder.keys.keys.grad.abs().sum() > 0
    assert [h["task"] for h in distiller.history] == [0, 1, 1] and distiller.mean_loss(0) == 0.0
    assert distiller.mean_loss(1) == pytest.approx(loss.item() / 2, abs=1e-6)


# -- gradient modulation ------------------------------------------------------------


def test_coefficient_in_zero_one():
    assert coefficient(0.5, 0.1) == 1.0 and coefficient(1.0, 0.1) == 1.0
    for gamma in (1.01, 2.0, 10.0, 1e6):
        assert 0.0 < coefficient(gamma, 0.1) < 1.0
    assert coefficient(3.0, 0.1) == pytest.approx(1 - math.tanh(0.3))
    s_t, s_v = contribution_scores(torch.tensor([[10.0, 0.0], [0.0, 10.0]]), torch.zeros(2, 2), torch.tensor([0, 1]))
    assert s_t == pytest.approx(2.0, abs=1e-3) and s_v == pytest.approx(1.0)


def _fill_grads(model) -> None:
    for p in model.parameters():
        p.grad = torch.ones_like(p)


def test_modulation_scales_the_dominant_modality(mre_model):
    params = modality_parameters(mre_model)
    mod = GradientModulator(alpha=0.1)
    mod.begin_task(0, mre_model)
    gold = torch.tensor([0, 1, 2, 1])
    strong = torch.nn.functional.one_hot(gold, 3).float() * 8  # text is confident and right
    _fill_grads(mre_model)
    mod.observe(strong, torch.zeros(4, 3), gold)
    rec = mod.on_step(mre_model)
    g = coefficient(rec.gamma, 0.1)
    assert rec.gamma > 1 and 0 < g < 1 and rec.applied_text == pytest.approx(g) and rec.applied_vision == 1.0
    assert all(torch.allclose(p.grad, torch.full_like(p, g)) for p in params["text"])
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in params["vision"])
    assert torch.equal(mre_model.classifier.text.weight.grad, torch.ones_like(mre_model.classifier.text.weight))
    assert torch.equal(mre_model.encoder.keys.keys.grad, torch.ones_like(mre_model.encoder.keys.keys))
    averages = mod.end_task()
    assert averages == {"text": pytest.approx(g), "vision": 1.0}
    # later tasks: the previous task's average G, whatever this batch says (Remark 1)
    mod.begin_task(1, mre_model)
    _fill_grads(mre_model)
    mod.observe(torch.zeros(4, 3), strong, gold)  # now vision dominates this batch
    rec = mod.on_step(mre_model)
    assert rec.gamma < 1 and rec.coeff_vision < 1 and rec.coeff_text == 1.0
    assert rec.applied_text == pytest.approx(g) and rec.applied_vision == 1.0
    assert all(torch.allclose(p.grad, torch.full_like(p, g)) for p in params["text"])
    assert [r.task for r in mod.history] == [0, 1]
    # measuring only (the w/o-modulation ablation) leaves gradients alone
    off = GradientModulator(alpha=0.1, apply=False)
    off.begin_task(0, mre_model)
    _fill_grads(mre_model)
    off.observe(strong, torch.zeros(4, 3), gold)
    assert off.on_step(mre_model).gamma > 1
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in params["text"])


def test_mner_halves_are_per_word(mner_model, encoder_and_tokenizer):
    _, tok = encoder_and_tokenizer
    sents = [["Obama", "visited", "Paris"], ["Hi"]]
    tags = [["B-PER", "O", "O"], ["O"]]
    batch = encode_ner(tok, sents, {t: i for i, t in enumerate(mner_model.tags)}, tags)
    parts = forward_parts(mner_model, batch)
    assert parts.text_logits.shape == (4, 3) and parts.gold.tolist() == [1, 0, 0, 0]
    assert parts.loss.item() > 0 and len(parts.stream.text_attn) == mner_model.encoder.n_interact


# -- scores and reports ---------------------------------------------------------------


def test_a_and_u_on_hand_made_predictions():
    gold = ["a", "b", "None", "b"]
    pred = ["a", "a", "None", "None"]
    s = score_after_task("mre", gold, pred, [["a"], ["b"]])
    assert s["A"] == pytest.approx(40.0)  # 1 right of 2 predicted, 3 gold
    assert s["U"] == 0.0  # no "b" found
    assert s["per_task"][0] == pytest.approx(200 / 3)  # "a": 1 of 2 predicted, 1 gold
    ner = score_after_task("mner", [["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]],
                           [["PER"], ["LOC"]])
    assert ner["A"] == pytest.approx(200 / 3) and ner["U"] == 0.0 and ner["per_task"][0] == 100.0
    assert isinstance(ner["A"], float)


def _fake_result() -> dict:
    def method(a1, a2):
        mod = [{"task": t, "step": s, "score_text": 1.0, "score_vision": 1.0, "gamma": 1.0 + 0.1 * s,
                "coeff_text": 0.9, "coeff_vision": 1.0, "applied_text": 0.9, "applied_vision": 1.0}
               for t in (0, 1) for s in range(3)]
        tasks = [{"task": k, "new_classes": [c], "A": a, "U": a, "per_task_f1": [a], "n_labels": 2 + k,
                  "train_examples": 10, "test_examples": 5, "best_epoch": 1, "seconds": 1.0, "l_ad": 0.1 * k,
                  "gamma_mean": 1.1, "memory_exemplars": 6} for k, (a, c) in enumerate([(a1, "x"), (a2, "y")])]
        return {"tasks": tasks, "mean_A": (a1 + a2) / 2, "final_A": a2, "modulation": mod}

    return {"benchmark": "imre-sep10", "kind": "mre", "metric": "micro-F1 without None",
            "config": {"epochs": 1, "limit": 10, "lr": 1e-5, "alpha": 0.1, "lam": 1.0, "seed": 42},
            "stream": [{"task": 0, "new_classes": ["x"]}, {"task": 1, "new_classes": ["y"]}],
            "methods": {"mspt": method(50.0, 40.0), "finetune": method(50.0, 20.0)}, "seconds": 2.0}


def test_report_files_are_written(tmp_path):
    paths = write_report(_fake_result(), tmp_path / "out")
    assert set(paths) == {"json", "csv", "markdown", "accuracy_plot", "modulation_plot"}
    rows = paths["csv"].read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("method,task,new_classes,A,U")
    assert json.loads(paths["json"].read_text())["methods"]["mspt"]["final_A"] == 40.0
    md = paths["markdown"].read_text()
    assert "| mspt | 50.00 | 40.00 | 45.00 |" in md and "| finetune |" in md and "U_k" in md
    for key in ("accuracy_plot", "modulation_plot"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- methods and command line -----------------------------------------------------------


def test_method_names_and_ablations():
    mspt = parse_method("mspt")
    assert mspt.interaction and mspt.distillation and mspt.modulation and mspt.memory == "prototype"
    ab = parse_method("mspt-no-memory-no-modulation")
    assert ab.memory is None and not ab.modulation and ab.distillation and ab.interaction
    assert not parse_method("mspt-no-interaction").interaction
    assert mspt.relabel and not parse_method("mspt-no-relabel").relabel and not parse_method("replay").relabel
    assert parse_method("replay+relabel") == MethodSpec("replay+relabel", memory="random", relabel=True)
    assert mspt.balance and not parse_method("mspt-no-balance").balance and not parse_method("replay_ewc").balance
    assert parse_method("replay_ewc+balance") == MethodSpec("replay_ewc+balance", memory="random", ewc=True,
                                                            balance=True)
    both = parse_method("finetune+relabel+balance")
    assert both.relabel and both.balance and both.memory is None
    assert parse_method("replay").memory == "random" and not parse_method("replay").interaction
    assert parse_method("replay", baseline_interaction=True).interaction
    assert parse_method("replay_ewc").ewc and parse_method("joint").joint
    for bad in ("mspt-no-fun", "sgd", "mspt+relabel", "sgd+relabel", "replay+ewc", "replay+balance+fun"):
        with pytest.raises(ValueError):
            parse_method(bad)


def test_benchmark_command_line(capsys):
    import argparse

    from continual.cli import add_benchmark_parser, cmd_benchmark, config_from_args

    parser = argparse.ArgumentParser(prog="mkg")
    add_benchmark_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["benchmark", "imre", "--split", "sep5", "--methods", "mspt,replay", "--tasks", "2",
                              "--limit", "40", "--epochs", "1", "--lambda", "0.5"])
    assert args.func is cmd_benchmark
    cfg = config_from_args(args, args.benchmark_kind).resolved()
    assert (cfg.kind, cfg.variant, cfg.methods, cfg.n_tasks, cfg.limit) == ("mre", "sep5", ["mspt", "replay"], 2, 40)
    assert cfg.lam == 0.5 and cfg.alpha == 0.1 and cfg.lr == 1e-5 and cfg.val_limit == 10
    ner = config_from_args(parser.parse_args(["benchmark", "imner", "--order", "POLM"]), "mner").resolved()
    assert (ner.variant, ner.lr, ner.alpha, ner.lam) == ("POLM", 3e-5, 0.3, 0.1)
    with pytest.raises(SystemExit):
        parser.parse_args(["benchmark", "imner", "--help"])
    assert "entity-level F1" in capsys.readouterr().out
    bad = parser.parse_args(["benchmark", "imre", "--methods", "mspt,nope"])
    assert cmd_benchmark(bad) == 2 and "unknown method 'nope'" in capsys.readouterr().err


class _Teacher:
    """Stands in for the previous task's tagger: returns fixed tag sequences."""

    kind = "mner"

    def __init__(self, tags):
        self.tags = tags

    def predict(self, model, sentences, device="cpu"):
        assert len(sentences) == len(self.tags)
        return [list(t) for t in self.tags]


def test_teacher_relabelling_fills_only_o_tokens_with_old_types():
    from continual.relabel import relabel_with_teacher

    ex = NERExample(("Obama", "visits", "Paris", "with", "Angela", "Merkel"),
                    ("O", "O", "B-LOC", "O", "O", "O"))
    teacher = _Teacher([("B-PER", "O", "B-PER", "O", "B-PER", "I-PER")])  # Paris as PER clashes with gold LOC
    (out,), added = relabel_with_teacher(teacher, None, [ex], ["PER"])
    assert out.tags == ("B-PER", "O", "B-LOC", "O", "B-PER", "I-PER") and added == 2
    teacher = _Teacher([("B-LOC", "O", "O", "O", "B-MISC", "I-MISC")])  # LOC is the task's own type; MISC unknown
    (out,), added = relabel_with_teacher(teacher, None, [ex], ["PER"])
    assert out == ex and added == 0
    assert relabel_with_teacher(teacher, None, [ex], []) == ([ex], 0)  # the first task has no teacher


def test_learner_relabels_only_after_a_task_and_only_with_the_component():
    from continual.methods import ContinualLearner, MethodOptions

    teacher = _Teacher([("B-PER", "O")])
    examples = [NERExample(("Obama", "speaks"), ("O", "O"))]
    on = ContinualLearner(parse_method("mspt-no-memory-no-distillation"), teacher, MethodOptions())
    off = ContinualLearner(parse_method("mspt-no-memory-no-distillation-no-relabel"), teacher, MethodOptions())
    assert on.relabel(0, examples, None) == examples  # nothing learned yet: no teacher
    for learner in (on, off):
        learner.end_task(0, torch.nn.Linear(1, 1), examples, ["PER"])
    assert on.relabel(1, examples, None)[0].tags == ("B-PER", "O") and on.relabelled == {1: 1}
    assert off.relabel(1, examples, None) == examples and off.relabelled == {}
