"""Versioned model artifacts with an atomically switched ``current`` pointer.

Layout: ``ROOT/<kind>/versions/<version>/{weights.safetensors, config.json,
metrics.json}`` and ``ROOT/<kind>/current`` (a one-line file naming the
version, replaced with ``os.replace`` so a reader sees the old or the new
version, never half of one). Workers poll :meth:`ModelStore.current_version`
between batches to hot-reload.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .encoders import EncoderSpec, build_encoder

KINDS = ("mre", "mner")


def data_fingerprint(paths: Iterable[str | Path], limit: int | None = None) -> str:
    """sha256 over the training files' bytes (and the example limit, if any)."""
    h = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        h.update(Path(path).name.encode())
        h.update(Path(path).read_bytes())
    h.update(str(limit).encode())
    return h.hexdigest()


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _kind_dir(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        return self.root / kind

    def versions(self, kind: str) -> list[str]:
        d = self._kind_dir(kind) / "versions"
        return sorted(p.name for p in d.iterdir() if (p / "config.json").exists()) if d.exists() else []

    def save(self, kind: str, model, spec: EncoderSpec, *, metrics: dict, fingerprint: str,
             train_config: dict | None = None, parent: str | None = None) -> str:
        from safetensors.torch import save_file

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        version = f"{kind}-{stamp}-{fingerprint[:8]}"
        final = self._kind_dir(kind) / "versions" / version
        tmp = final.with_name(version + ".tmp")
        tmp.mkdir(parents=True, exist_ok=False)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        enc = model.encoder
        labels = model.labels if kind == "mre" else model.tags
        config = {"kind": kind, "version": version, "labels": labels, "encoder": asdict(spec),
                  "n_interact": enc.n_interact, "max_text_len": enc.max_text_len,
                  "shared_key_mode": enc.shared_key_mode, "created_at": stamp, "data_fingerprint": fingerprint,
                  "train_config": train_config or {}, "parent": parent}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        os.replace(tmp, final)
        return version

    def promote(self, kind: str, version: str) -> None:
        if version not in self.versions(kind):
            raise ValueError(f"no {kind} version {version!r} in {self.root}")
        pointer = self._kind_dir(kind) / "current"
        tmp = pointer.with_name("current.tmp")
        tmp.write_text(version + "\n")
        os.replace(tmp, pointer)

    def current_version(self, kind: str) -> str | None:
        pointer = self._kind_dir(kind) / "current"
        return pointer.read_text().strip() if pointer.exists() else None

    def version_dir(self, kind: str, version: str) -> Path:
        """The folder of one version (weights, config, metrics, and what continual learning keeps)."""
        return self._kind_dir(kind) / "versions" / version

    def config(self, kind: str, version: str) -> dict:
        return json.loads((self._kind_dir(kind) / "versions" / version / "config.json").read_text())

    def metrics(self, kind: str, version: str) -> dict:
        return json.loads((self._kind_dir(kind) / "versions" / version / "metrics.json").read_text())

    def load(self, kind: str, version: str | None = None, device: str = "cpu"):
        """(model, task, config) for ``version`` (default: current)."""
        from safetensors.torch import load_file

        from .tasks import NERTask, RETask

        version = version or self.current_version(kind)
        if version is None:
            raise FileNotFoundError(f"no current {kind} model in {self.root}")
        cfg = self.config(kind, version)
        spec = EncoderSpec(**cfg["encoder"])
        encoder, tokenizer = build_encoder(spec, pretrained=False, n_interact=cfg["n_interact"],
                                           max_text_len=cfg["max_text_len"], shared_key_mode=cfg["shared_key_mode"])
        task = RETask(tokenizer) if kind == "mre" else NERTask(tokenizer)
        model = task.build(encoder, cfg["labels"])
        state = load_file(str(self._kind_dir(kind) / "versions" / version / "weights.safetensors"))
        model.load_state_dict(state)
        return model.to(device).eval(), task, cfg
