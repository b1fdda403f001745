"""Frozen MiniLM sentence embeddings of entity texts, cached on disk.

Encoding is the expensive part of the text-aware model, and an entity's text
rarely changes between hourly runs, so vectors are cached by
sha256(encoder, max length, text): a run encodes only texts it has not seen.
The encoder is the project's offline MiniLM (:mod:`extractors.encoders`);
sentence vectors are the attention-masked mean of the last hidden states,
L2-normalised (how all-MiniLM-L6-v2 was trained to be used).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from extractors.encoders import MINILM, load_text

log = logging.getLogger(__name__)


class TextEmbedder:
    def __init__(self, encoder: str = MINILM, cache_dir: str | Path | None = None, max_length: int = 64,
                 batch_size: int = 128) -> None:
        self.encoder = encoder
        self.max_length = max_length
        self.batch_size = batch_size
        slug = hashlib.sha256(f"{encoder}|{max_length}".encode()).hexdigest()[:12]
        self.cache_path = Path(cache_dir) / f"text-{slug}.npz" if cache_dir else None
        self._cache: dict[str, np.ndarray] = self._read_cache()
        self._model = None
        self._tokenizer = None

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.encoder}|{self.max_length}|{text}".encode()).hexdigest()

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

    def _load(self) -> None:
        if self._model is None:
            self._model, self._tokenizer = load_text(self.encoder)
            self._model.eval()

    @torch.no_grad()
    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        from tqdm import tqdm

        self._load()
        # longest first: batches of similar length waste less padding
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
        for start in tqdm(range(0, len(texts), self.batch_size), desc="encode entity texts", unit="batch",
                          disable=not progress):
            idx = order[start:start + self.batch_size]
            enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
            hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(vec, dim=-1).numpy()
        return out

    def embed(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        """[len(texts), hidden] float32, from the cache where possible."""
        keys = [self._key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self._cache}.items())
        if todo:
            log.info("encoding entity texts", extra={"new": len(todo), "cached": len(set(keys)) - len(todo)})
            vecs = self._encode([t for _, t in todo], progress)
            self._cache.update({k: v for (k, _), v in zip(todo, vecs)})
            self._write_cache()
        return torch.from_numpy(np.stack([self._cache[k] for k in keys])) if keys else torch.zeros(0, 384)
