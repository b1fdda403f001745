"""The dual-stream encoder: pretrained layers reproduced exactly, K^s really used.

Vision weights are random here (the test says so): these tests check wiring,
not quality; the pretrained DINOv2 conversion has its own test.
"""
import pytest
import torch

from extractors.encoders import EncoderSpec, RANDOM_VISION, build_encoder


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    encoder, tokenizer = build_encoder(EncoderSpec(vision=RANDOM_VISION))
    return encoder.eval(), tokenizer


def batch(tokenizer, texts=("Barack Obama met Angela Merkel in Berlin", "hello world")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


def test_without_interaction_the_streams_equal_the_pretrained_models(parts):
    encoder, tok = parts
    b = batch(tok)
    pixels = torch.randn(2, 3, 224, 224)
    encoder.interaction_enabled = False
    try:
        with torch.no_grad():
            out = encoder(b["input_ids"], b["attention_mask"], pixels, torch.tensor([True, True]))
            ref_text = encoder.text(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
            ref_vision = encoder.vision.forward_features(pixels)
    finally:
        encoder.interaction_enabled = True
    mask = b["attention_mask"].bool()
    assert torch.allclose(out.text[mask], ref_text[mask], atol=1e-4)
    assert torch.allclose(out.vision, ref_vision, atol=1e-4)


def test_add_mode_adds_the_shared_keys_to_the_pretrained_scores(parts):
    """The production default ("add", Eq. 10-11 beside the pretrained keys): scores =
    Q·K_own + Q·K^s + B. With K^s and B at zero the interaction layers attend exactly as the
    pretrained ones (the own keys are kept); with a bank the scores gain Q·K^s, a term that
    differs from query to query (a constant per query would cancel in the softmax)."""
    encoder, tok = parts
    assert encoder.shared_key_mode == "add"  # what build_encoder gives production
    inputs = {k: v for k, v in batch(tok, ["a b c d e f g"]).items() if k != "token_type_ids"}
    keys, bias = encoder.keys.keys, encoder.keys.text_bias
    saved = keys.detach().clone(), bias.detach().clone()
    try:
        with torch.no_grad():
            keys.zero_()
            bias.zero_()
            zero_bank = encoder(**inputs)
            encoder.interaction_enabled = False
            pretrained = encoder(**inputs)
            encoder.interaction_enabled = True
            torch.nn.init.normal_(keys, std=1.0)
            banked = encoder(**inputs)
    finally:
        encoder.interaction_enabled = True
        with torch.no_grad():
            keys.copy_(saved[0])
            bias.copy_(saved[1])
    for a_zero, a_pre in zip(zero_bank.text_attn, pretrained.text_attn, strict=True):
        torch.testing.assert_close(a_zero, a_pre, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(zero_bank.text, pretrained.text, rtol=1e-4, atol=1e-4)
    # first interaction layer: same input in both runs, so the log-attention differs by the shared
    # scores Q·K^s (minus a per-query normaliser, removed by centring each row)
    delta = banked.text_attn[0][0].log() - zero_bank.text_attn[0][0].log()  # [H, T, T]
    delta = delta - delta.mean(-1, keepdim=True)
    assert delta.abs().max() > 0.1  # the bank is used in add mode
    assert not torch.allclose(delta[:, 1], delta[:, 2], atol=1e-3)  # and depends on the query


def test_replace_mode_attention_depends_on_the_query(parts):
    """The "replace" ablation (the reference code's form): Eq. 10-11 with a bank: different queries get different attention over K^s
    (the reference code's [1, heads, head_dim, 1] key would make them equal)."""
    encoder, tok = parts
    encoder.shared_key_mode = "replace"
    try:
        with torch.no_grad():
            torch.nn.init.normal_(encoder.keys.keys, std=1.0)
            out = encoder(**{k: v for k, v in batch(tok, ["a b c d e f g"]).items() if k != "token_type_ids"})
    finally:
        encoder.shared_key_mode = "add"
    attn = out.text_attn[0][0, 0]  # [T, T] for head 0
    assert not torch.allclose(attn[1], attn[2], atol=1e-3)
    assert len(out.text_attn) == encoder.n_interact == len(out.vision_attn)


def test_k_shared_is_one_parameter_for_both_modalities(parts):
    encoder, tok = parts
    b = batch(tok)
    encoder.zero_grad()
    out = encoder(b["input_ids"], b["attention_mask"], torch.randn(2, 3, 224, 224), torch.tensor([True, True]))
    (out.text_cls.sum()).backward(retain_graph=True)
    text_grad = encoder.keys.keys.grad.clone()
    encoder.zero_grad()
    out.vision_cls.sum().backward()
    assert text_grad.abs().sum() > 0 and encoder.keys.keys.grad.abs().sum() > 0


def test_missing_image_uses_the_learned_tokens_and_is_masked(parts):
    encoder, tok = parts
    b = batch(tok)
    with torch.no_grad():
        alone = encoder(b["input_ids"][1:], b["attention_mask"][1:])  # no image at all
        mixed = encoder(b["input_ids"], b["attention_mask"], torch.randn(2, 3, 224, 224), torch.tensor([True, False]))
    # the post without an image is encoded the same whether or not its batch-mate had one
    assert torch.allclose(alone.vision_cls[0], mixed.vision_cls[1], atol=1e-4)
    assert torch.allclose(alone.text_cls[0], mixed.text_cls[1], atol=1e-4)
    assert alone.vision.shape[1] == encoder.no_image.shape[0]


def test_rows_sharing_an_image_run_the_vision_stream_once(parts):
    encoder, tok = parts
    b = batch(tok, ["a visited b", "b visited a", "c met d"])
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        repeated = encoder(b["input_ids"], b["attention_mask"], pixels[[0, 0, 1]], torch.tensor([True, True, False]))
        shared = encoder(b["input_ids"], b["attention_mask"], pixels, torch.tensor([True, False]),
                         image_index=torch.tensor([0, 0, 1]))
    assert torch.allclose(repeated.vision, shared.vision, atol=1e-5)
    assert torch.allclose(repeated.text, shared.text, atol=1e-5)
    assert all(torch.allclose(a, c, atol=1e-5) for a, c in zip(repeated.vision_attn, shared.vision_attn))
