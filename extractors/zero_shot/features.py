"""Frozen-encoder features of samples and classes.

The zero-shot scorer trains on top of frozen encoders, for two reasons:
the encoders must not have seen the unseen classes (the shipped MRE model was
fine-tuned on every MNRE relation, so it cannot be the base of an honest
zero-shot figure), and a frozen base makes features computable once, so the
scorer trains in seconds on a CPU and a new class costs one sentence encoding.

A sample (an entity pair in a post) becomes three text tokens, the sample's
``[CLS ; E1 ; E2]``: the sentence state and the two entity states, read from
the text encoder run over the post with entity markers around head and tail.
The sentence state is the attention-masked mean of the last layer, not the
CLS position: all-MiniLM-L6-v2 was trained to be read by mean pooling, and its
CLS state is no sentence vector. Entity states are the mean over the entity's
word pieces (the markers' own states are untrained embeddings in a frozen
encoder). A post with an image adds one vision token, DINOv2's CLS.
A class becomes its phrase (:func:`extractors.zero_shot.classes.class_phrase`)
mean-pooled by the same text encoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..datasets import REExample
from ..encoders import MINILM, SentenceEmbedder, load_text
from ..features import MARKERS, mark_entities, register_markers

N_TEXT_TOKENS = 3  # sentence, head, tail


@dataclass
class SampleFeatures:
    """Per-sample inputs of the scorer."""

    text: torch.Tensor  # [N, 3, d_text]: sentence, head, tail states
    vision: torch.Tensor  # [N, d_vision] image CLS (zeros where has_image is False)
    has_image: torch.Tensor  # [N] bool

    def __len__(self) -> int:
        return self.text.shape[0]

    def take(self, index) -> "SampleFeatures":
        index = torch.as_tensor(index, dtype=torch.long)
        return SampleFeatures(self.text[index], self.vision[index], self.has_image[index])


class FrozenSampleEncoder:
    """Encodes samples and class phrases with frozen pretrained encoders (offline weights)."""

    def __init__(self, text: str = MINILM, vision_dim: int = 384, max_length: int = 128,
                 batch_size: int = 32) -> None:
        self.text_name, self.vision_dim = text, vision_dim
        self.max_length, self.batch_size = max_length, batch_size
        self._model = self._tokenizer = None
        self._vision = None
        self._phrases = SentenceEmbedder(text, max_length=64, batch_size=batch_size)

    def _load(self) -> None:
        if self._model is None:
            self._model, self._tokenizer = load_text(self.text_name)
            register_markers(self._tokenizer)
            self._model.eval()

    @property
    def text_dim(self) -> int:
        return self._phrases.dim

    def classes(self, phrases: Sequence[str]) -> torch.Tensor:
        """[C, d_text] unit vectors of class phrases."""
        return torch.from_numpy(self._phrases(list(phrases)))

    def samples(self, examples: Sequence[REExample], images: Sequence[object | None] | None = None,
                progress: bool = False) -> SampleFeatures:
        """Features of ``examples``; ``images`` (PIL images or None, one per example) adds vision tokens."""
        from tqdm import tqdm

        self._load()
        n = len(examples)
        text = torch.zeros(n, N_TEXT_TOKENS, self.text_dim)
        order = sorted(range(n), key=lambda i: -len(examples[i].tokens))  # similar lengths batch together
        with torch.no_grad():
            for start in tqdm(range(0, n, self.batch_size), desc="encode samples", unit="batch",
                              disable=not progress):
                idx = order[start:start + self.batch_size]
                text[idx] = self._text_tokens([examples[i] for i in idx])
        vision = torch.zeros(n, self.vision_dim)
        has_image = torch.zeros(n, dtype=torch.bool)
        if images is not None and any(im is not None for im in images):
            rows = [i for i, im in enumerate(images) if im is not None]
            vision[rows] = self._vision_cls([images[i] for i in rows])
            has_image[rows] = True
        return SampleFeatures(text, vision, has_image)

    def _text_tokens(self, examples: Sequence[REExample]) -> torch.Tensor:
        marked = [mark_entities(ex.tokens, ex.head, ex.tail) for ex in examples]
        enc = self._tokenizer(marked, is_split_into_words=True, truncation=True, max_length=self.max_length,
                              padding=True, return_tensors="pt")
        hidden = self._model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        sentence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out = torch.zeros(len(examples), N_TEXT_TOKENS, hidden.shape[-1])
        out[:, 0] = sentence
        for b, words in enumerate(marked):
            ex = examples[b]
            original = [k for k, w in enumerate(words) if w not in MARKERS]  # token i sits at original[i]
            word_ids = enc.word_ids(b)
            for slot, (lo, hi) in ((1, ex.head), (2, ex.tail)):
                span = {original[i] for i in range(lo, min(hi, len(original)))}
                pieces = [p for p, w in enumerate(word_ids) if w is not None and w in span]
                # truncated away: the sentence state stands in for the entity
                out[b, slot] = hidden[b, pieces].mean(0) if pieces else sentence[b]
        return out

    def _vision_cls(self, images: Sequence[object]) -> torch.Tensor:
        from ..encoders import DINOV2_SMALL, load_vision
        from ..vision import preprocess

        if self._vision is None:
            self._vision = load_vision(DINOV2_SMALL).eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                out.append(self._vision.forward_features(preprocess(list(images[start:start + self.batch_size])))[:, 0])
        return torch.cat(out)


def as_numpy(features: SampleFeatures) -> dict[str, np.ndarray]:
    """For caching features on disk (``np.savez``)."""
    return {"text": features.text.numpy(), "vision": features.vision.numpy(), "has_image": features.has_image.numpy()}


def from_numpy(arrays) -> SampleFeatures:
    return SampleFeatures(torch.from_numpy(np.asarray(arrays["text"])), torch.from_numpy(np.asarray(arrays["vision"])),
                          torch.from_numpy(np.asarray(arrays["has_image"])))


def cached_samples(examples: Sequence[REExample], encoder: FrozenSampleEncoder, cache_dir: str | Path,
                   name: str = "samples", progress: bool = True) -> SampleFeatures:
    """:meth:`FrozenSampleEncoder.samples` of text-only ``examples``, kept in ``cache_dir`` under a
    digest of the examples and the encoder (a changed example or encoder encodes again)."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([[list(e.tokens), e.head, e.tail] for e in examples]).encode()
                            + encoder.text_name.encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}_{digest}.npz"
    if path.exists():
        return from_numpy(np.load(path))
    feats = encoder.samples(examples, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **as_numpy(feats))
    return feats
