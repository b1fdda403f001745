"""Pictures and text-trained models: the image gate, unrelated-image augmentation, shared vision passes.

Real MiniLM with the seeded random ViT, tiny label sets.
"""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from extractors.augment import UnrelatedPictures, with_unrelated_pictures
from extractors.datasets import NERExample, REExample
from extractors.encoders import RANDOM_VISION, EncoderSpec, build_encoder
from extractors.features import attach_images, encode_re
from extractors.models import ImageGate
from extractors.store import ModelStore
from extractors.kinds import get_kind
from extractors.training import TrainConfig, fit

SPEC = EncoderSpec(vision=RANDOM_VISION)
RELATIONS = ["None", "/per/per/peer", "/per/org/member_of"]
SENT = ("Barack", "Obama", "met", "Angela", "Merkel", "in", "Berlin")
PAIRS = [REExample(SENT, (0, 2), (3, 5), "/per/per/peer"), REExample(SENT, (3, 5), (0, 2), "/per/per/peer"),
         REExample(SENT, (0, 2), (6, 7), "None"), REExample(SENT, (3, 5), (6, 7), "None")]


def re_model(image_gate: bool, seed: int = 0):
    torch.manual_seed(seed)
    encoder, tokenizer = build_encoder(SPEC)
    task = get_kind("mre").task(tokenizer)
    return task.build(encoder, RELATIONS, image_gate=image_gate).eval(), task


def picture(color) -> Image.Image:
    return Image.new("RGB", (64, 48), color)


def test_rows_sharing_a_picture_run_the_vision_stream_once():
    _, task = re_model(False)
    red, blue = picture("red"), picture("blue")
    batch = attach_images(encode_re(task.tokenizer, PAIRS, None), [red, None, red, blue])
    # two distinct pictures plus one row standing for "no image"
    assert batch.pixels.shape[0] == 3
    assert batch.has_image.tolist() == [True, True, False]
    assert batch.image_index.tolist() == [0, 2, 0, 1]
    untouched = encode_re(task.tokenizer, PAIRS, None)
    assert attach_images(untouched, [None] * 4).pixels is None
    with pytest.raises(ValueError, match="4 rows"):
        attach_images(encode_re(task.tokenizer, PAIRS, None), [red])


def test_shared_rows_score_as_if_each_had_its_own_copy():
    model, task = re_model(True)
    red = picture("red")
    shared = attach_images(encode_re(task.tokenizer, PAIRS, None), [red, red, None, red])
    copies = attach_images(encode_re(task.tokenizer, PAIRS, None), [red, red.copy(), None, red.copy()])
    assert copies.pixels.shape[0] == 4 and shared.pixels.shape[0] == 2
    with torch.no_grad():
        torch.testing.assert_close(model(shared), model(copies), rtol=1e-4, atol=1e-5)


def test_a_closed_gate_makes_any_picture_score_like_no_picture():
    model, task = re_model(True)
    gate: ImageGate = model.image_gate
    text_only = encode_re(task.tokenizer, PAIRS, None)
    with torch.no_grad():
        gate.text.bias.fill_(30.0)  # open: the picture counts
        with_photo = model(attach_images(encode_re(task.tokenizer, PAIRS, None), [picture("red")] * 4))
        no_photo = model(text_only)
        assert not torch.allclose(with_photo, no_photo, atol=1e-3)
        gate.text.bias.fill_(-30.0)  # closed: lambda ~ 1e-13
        closed_photo = model(attach_images(encode_re(task.tokenizer, PAIRS, None), [picture("red")] * 4))
        closed_none = model(text_only)
    torch.testing.assert_close(closed_photo, closed_none, rtol=1e-4, atol=1e-5)


def test_the_gate_mixes_the_picture_with_the_no_image_state():
    model, task = re_model(True)
    with torch.no_grad():
        model.image_gate.vision.weight.normal_(std=0.1)
        none = model.encoder.no_image_state()
        # the no-image state is what a post without a picture gets from the vision stream
        batch = encode_re(task.tokenizer, PAIRS[:1], None)
        out = model.encoder(batch.input_ids, batch.attention_mask)
        torch.testing.assert_close(out.vision_cls, none, rtol=1e-4, atol=1e-5)
        h_t, h_v = torch.randn(3, 3 * 384), torch.randn(3, 384)
        lam = model.image_gate(h_t, h_v)
        assert lam.shape == (3, 1) and bool(((lam > 0) & (lam < 1)).all())
        torch.testing.assert_close(model.image_gate.mix(h_t, h_v, none), lam * h_v + (1 - lam) * none)
    starts_closed, _ = re_model(True)
    assert float(starts_closed.image_gate(h_t, h_v).max()) < 0.05  # a new model ignores pictures at first


def test_the_gate_stage_trains_only_the_gate():
    model, task = re_model(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=2, head_lr=1e-2, progress=False, train_only="image_gate",
                      image_augment=1.0, device="cpu")
    fit(task, model, PAIRS, [], cfg)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "the gate stage trained nothing"
    assert changed <= {k for k in before if k.startswith("image_gate.")}, changed
    ungated, _ = re_model(False)
    with pytest.raises(ValueError, match="image gate"):
        fit(task, ungated, PAIRS, [], cfg)


def test_augmentation_attaches_pictures_to_about_the_share_asked():
    pictures = UnrelatedPictures(seed=3)
    rows = [pictures.for_rows(16, 0.5) for _ in range(40)]
    share = sum(r is not None for batch in rows for r in batch) / (16 * 40)
    assert 0.4 < share < 0.6
    assert all(len({id(r) for r in batch if r is not None}) <= 2 for batch in rows)  # two per batch at most
    assert all(r.mode == "RGB" for batch in rows for r in batch if r is not None)
    again = UnrelatedPictures(seed=3)
    first = [r is None for r in again.for_rows(16, 0.5)]
    assert first == [r is None for r in rows[0]]  # seeded: the same rows get pictures
    _, task = re_model(False)
    batch = with_unrelated_pictures(encode_re(task.tokenizer, PAIRS, None), UnrelatedPictures(seed=0), 1.0)
    assert batch.has_image is not None and bool(batch.has_image[batch.image_index].all())


def test_gate_is_saved_and_loaded_with_the_version(tmp_path):
    model, _ = re_model(True)
    with torch.no_grad():
        model.image_gate.vision.weight.normal_()
    store = ModelStore(tmp_path)
    version = store.save("mre", model, SPEC, metrics={}, fingerprint="f" * 64)
    assert store.config("mre", version)["image_gate"] is True
    loaded, _, _ = store.load("mre", version)
    torch.testing.assert_close(loaded.image_gate.vision.weight, model.image_gate.vision.weight)
    ungated, _ = re_model(False)
    old = store.save("mre", ungated, SPEC, metrics={}, fingerprint="e" * 64)
    assert store.load("mre", old)[0].image_gate is None


def test_ner_rows_get_their_own_picture():
    torch.manual_seed(0)
    encoder, tokenizer = build_encoder(SPEC)
    task = get_kind("mner").task(tokenizer)
    model = task.build(encoder, ["O", "B-PER", "I-PER"], image_gate=False).eval()
    examples = [NERExample(SENT, ("B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "O"))] * 2
    plain = task.predict(model, [e.tokens for e in examples])
    same = task.predict(model, [e.tokens for e in examples], images=[None, None])
    assert plain == same
    with torch.no_grad():
        from extractors.features import encode_ner

        batch = encode_ner(tokenizer, [e.tokens for e in examples], None)
        a = model(attach_images(encode_ner(tokenizer, [e.tokens for e in examples], None), [picture("red"), None]))
        b = model(batch)
    torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-5)  # the row without a picture is unchanged
    assert not torch.allclose(a[0], b[0], atol=1e-4)  # the row with one is not
