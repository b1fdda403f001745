"""Sentence embeddings of entity texts, cached on disk.

Encoding is the expensive part of the text-aware model, and an entity's text
rarely changes between hourly runs, so vectors are cached by
sha256(encoder, max length, text): a run encodes only texts it has not seen.
The encoder itself is passed in (the wiring gives
:class:`extractors.encoders.SentenceEmbedder`): this layer does not load models.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


class SentenceEncoder(Protocol):
    """What the cache needs of an encoder: a name and max length (the cache key), its width, and the call."""

    name: str
    max_length: int

    @property
    def dim(self) -> int: ...

    def __call__(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


class TextEmbedder:
    def __init__(self, encoder: SentenceEncoder, cache_dir: str | Path | None = None) -> None:
        self.encoder = encoder
        slug = hashlib.sha256(f"{encoder.name}|{encoder.max_length}".encode()).hexdigest()[:12]
        self.cache_path = Path(cache_dir) / f"text-{slug}.npz" if cache_dir else None
        self._cache: dict[str, np.ndarray] = self._read_cache()

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.encoder.name}|{self.encoder.max_length}|{text}".encode()).hexdigest()

    def _read_cache(self) -> dict[str, np.ndarray]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        data = np.load(self.cache_path)
        return dict(zip(data["keys"].tolist(), data["vectors"]))

    def _write_cache(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp.npz")
        keys = list(self._cache)
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._cache[k] for k in keys]))
        os.replace(tmp, self.cache_path)

    def embed(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        """[len(texts), encoder.dim] float32, from the cache where possible."""
        keys = [self._key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self._cache}.items())
        if todo:
            log.info("encoding entity texts", extra={"new": len(todo), "cached": len(set(keys)) - len(todo)})
            vecs = self.encoder([t for _, t in todo], progress=progress)
            self._cache.update({k: v for (k, _), v in zip(todo, vecs)})
            self._write_cache()
        if not keys:
            return torch.zeros(0, self.encoder.dim)
        return torch.from_numpy(np.stack([self._cache[k] for k in keys]))
