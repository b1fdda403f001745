"""Unrelated-image augmentation: teach a text-trained extractor that a stray picture says nothing.

The research sets have no images, so without this a model meets its first
picture in production, and the vision half of its classifier, trained only on
the learned no-image tokens, shifts the logits by whatever the picture happens
to produce (measured in BENCHMARKS.md, "Images must not hurt": several F1
points). During training a share of the examples gets a picture that has
nothing to do with its text and keeps its label (FocalMRE's Align-Noise used as
training noise): real photographs from ``augment_images/`` with random crops,
flips and colour changes, and random-pixel pictures. The image gate
(:class:`extractors.models.ImageGate`) then learns to turn such pictures down.

The photographs the robustness benchmark evaluates with
(``pipeline/data/sample_images``) are not among these.

Each batch draws only ``per_batch`` pictures and shares them between its rows
(:func:`extractors.features.attach_images`), so the vision stream runs twice
per batch, not once per row.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .features import attach_images

TRAINING_PICTURES = Path(__file__).resolve().parent / "augment_images"


class UnrelatedPictures:
    """Random pictures unrelated to any post, drawn from a seeded generator."""

    def __init__(self, seed: int, folder: Path = TRAINING_PICTURES, noise_share: float = 0.25) -> None:
        self.rng = random.Random(seed)
        self.photos = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))]
        if not self.photos:
            raise FileNotFoundError(f"no training pictures (*.jpg) in {folder}")
        self.noise_share = noise_share

    def draw(self) -> Image.Image:
        if self.rng.random() < self.noise_share:
            return self._noise()
        photo = self.rng.choice(self.photos)
        w, h = photo.size
        scale = self.rng.uniform(0.6, 1.0)
        cw, ch = max(16, int(w * scale)), max(16, int(h * scale))
        left, top = self.rng.randint(0, w - cw), self.rng.randint(0, h - ch)
        picture = photo.crop((left, top, left + cw, top + ch))
        if self.rng.random() < 0.5:
            picture = ImageOps.mirror(picture)
        picture = ImageEnhance.Color(picture).enhance(self.rng.uniform(0.3, 1.7))
        return ImageEnhance.Brightness(picture).enhance(self.rng.uniform(0.7, 1.3))

    def _noise(self) -> Image.Image:
        seed = self.rng.getrandbits(32)
        gen = np.random.default_rng(seed)
        if self.rng.random() < 0.5:  # uniform random pixels
            return Image.fromarray(gen.integers(0, 256, (224, 224, 3), dtype=np.uint8))
        coarse = gen.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth colour blotches
        return Image.fromarray(coarse).resize((224, 224), Image.Resampling.BICUBIC)

    def for_rows(self, n_rows: int, share: float, per_batch: int = 2) -> list[Image.Image | None]:
        """A picture for about ``share`` of ``n_rows`` rows (``None`` for the rest), ``per_batch`` distinct ones."""
        pool = [self.draw() for _ in range(per_batch)]
        return [self.rng.choice(pool) if self.rng.random() < share else None for _ in range(n_rows)]


def with_unrelated_pictures(batch, pictures: UnrelatedPictures, share: float):
    """``batch`` with unrelated pictures attached to about ``share`` of its rows (labels unchanged)."""
    rows: Sequence = pictures.for_rows(batch.input_ids.shape[0], share)
    return attach_images(batch, rows)
