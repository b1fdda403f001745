"""Rehearsal memory: a few stored examples per learned class, replayed later.

After each task the memory keeps ``per_class`` exemplars (default 6) of each
class the task introduced; later tasks train on their own data plus the
memory. How exemplars are chosen is pluggable:

- ``random``: a seeded uniform sample (the classic replay baseline);
- ``prototype``: k-means (k = ``per_class``) on the model's own features of
  the class's examples, keeping the example nearest to each centroid, so the
  few slots cover the class's modes instead of its most frequent phrasing.
  Features: for MRE the classifier's text input ``[h_CLS ; h_head ; h_tail]``,
  for MNER the mean word feature of the sentence.

The memory is plain JSON (examples written out field by field), so it can be
saved beside the model version it belongs to and reloaded for the next
update without pickles.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from extractors.kinds import get_kind

STRATEGIES = ("random", "prototype")
MEMORY_FILE = "memory.json"
FeatureFn = Callable[[Sequence], torch.Tensor]


def example_to_json(ex) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(ex).items()}


def kmeans_prototypes(features: torch.Tensor, k: int, seed: int = 0, iters: int = 25) -> list[int]:
    """Indices of the ``k`` rows nearest to the centroids of a k-means clustering.

    Features are L2-normalised first (cosine geometry, as the encoder's
    features are compared elsewhere); k-means++ seeding with ``seed``. Every
    index is distinct; with ``k >= n`` all rows are returned.
    """
    n = features.shape[0]
    if k >= n:
        return list(range(n))
    x = torch.nn.functional.normalize(features.detach().double().cpu(), dim=1).numpy()
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(n)]]
    for _ in range(1, k):  # k-means++
        d2 = np.min([((x - c) ** 2).sum(1) for c in centroids], axis=0)
        total = d2.sum()
        centroids.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    c = np.stack(centroids)
    for _ in range(iters):
        assign = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    dist = ((x[:, None, :] - c[None]) ** 2).sum(-1)  # [n, k]
    chosen: list[int] = []
    for j in np.argsort(dist.min(0)):  # tightest clusters pick first
        for i in np.argsort(dist[:, j]):
            if int(i) not in chosen:
                chosen.append(int(i))
                break
    return chosen


def model_features(task, model, batch_size: int = 64, device: str = "cpu") -> FeatureFn:
    """A feature function for ``prototype`` selection from the current model (eval mode)."""

    def features(examples: Sequence) -> torch.Tensor:
        was_training = model.training
        model.eval()
        out = []
        for i in range(0, len(examples), batch_size):
            out.append(task.pooled_features(model, examples[i:i + batch_size], device=device))
        model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, 1)

    return features


class RehearsalMemory:
    """Exemplars per class, chosen when the class's task ends."""

    def __init__(self, kind: str, per_class: int = 6, strategy: str = "random", seed: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"memory strategy must be one of {STRATEGIES}, not {strategy!r}")
        if per_class < 1:
            raise ValueError("per_class must be at least 1")
        self.kind = kind
        self.per_class = per_class
        self.strategy = strategy
        self.seed = seed
        self.exemplars: dict[str, list] = {}  # class -> examples, in insertion (task) order
        self.task_of: dict[str, int] = {}

    def add_task(self, task_index: int, classes: Sequence[str], examples: Sequence,
                 features: FeatureFn | None = None) -> None:
        """Store exemplars of ``classes`` taken from ``examples`` (the task's training data)."""
        if self.strategy == "prototype" and features is None:
            raise ValueError("the prototype strategy needs a feature function (see model_features)")
        for c in classes:
            candidates = [ex for ex in examples if c in get_kind(self.kind).example_classes(ex)]
            self.exemplars[c] = self._select(c, candidates, features)
            self.task_of[c] = task_index

    def _select(self, cls: str, candidates: list, features: FeatureFn | None) -> list:
        seed = self.seed + sum(map(ord, cls))  # per class, independent of the order classes arrive in
        if len(candidates) <= self.per_class:
            return list(candidates)
        if self.strategy == "random":
            return random.Random(seed).sample(candidates, self.per_class)
        idx = kmeans_prototypes(features(candidates), self.per_class, seed)
        return [candidates[i] for i in idx]

    def examples(self) -> list:
        """All exemplars once each (an MNER sentence may stand for two classes)."""
        seen, out = set(), []
        for exs in self.exemplars.values():
            for ex in exs:
                if ex not in seen:
                    seen.add(ex)
                    out.append(ex)
        return out

    def counts(self) -> dict[str, int]:
        return {c: len(v) for c, v in self.exemplars.items()}

    def __len__(self) -> int:
        return len(self.examples())

    # -- persistence ---------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "per_class": self.per_class, "strategy": self.strategy, "seed": self.seed,
                "classes": {c: {"task": self.task_of.get(c), "examples": [example_to_json(e) for e in exs]}
                            for c, exs in self.exemplars.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "RehearsalMemory":
        mem = cls(d["kind"], d["per_class"], d["strategy"], d.get("seed", 0))
        for c, entry in d["classes"].items():
            mem.exemplars[c] = [get_kind(mem.kind).example_from_dict(e) for e in entry["examples"]]
            if entry.get("task") is not None:
                mem.task_of[c] = entry["task"]
        return mem

    def save(self, path: str | Path) -> Path:
        """Write JSON; a folder (e.g. a model-store version directory) gets ``memory.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / MEMORY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RehearsalMemory":
        path = Path(path)
        if path.is_dir():
            path = path / MEMORY_FILE
        return cls.from_dict(json.loads(path.read_text()))
