"""Saved completion models, in the extractors' model store layout.

``ROOT/completion/versions/<version>/{weights.safetensors, config.json,
metrics.json, vocab.json}`` and an atomically replaced ``ROOT/completion/current``,
published as every versioned artifact is (:mod:`mkg_common.artifacts`).
The versioned folder itself (listing, the pointer, config reads) is passed in
by the wiring (an :class:`extractors.store.ModelStore` holding the
``completion`` kind), so this layer does not import the extractors; this
class adds how a completion model is saved and loaded. ``vocab.json`` keys the
residual rows and relation operators by entity key and relation type, so a
warm start maps them onto a grown graph.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import torch

from mkg_common.artifacts import publishing
from mkg_common.clock import utc_iso, utc_now, utc_stamp

from .model import CompletionModel, ModelConfig
from .rerank import Reranker

KIND = "completion"


class VersionFolders(Protocol):
    """Versioned folders with an atomically switched ``current`` pointer (``extractors.store.ModelStore``)."""

    root: Path

    def version_dir(self, kind: str, version: str) -> Path: ...

    def current_version(self, kind: str) -> str | None: ...

    def promote(self, kind: str, version: str) -> None: ...

    def config(self, kind: str, version: str) -> dict: ...


class CompletionStore:
    def __init__(self, folders: VersionFolders) -> None:
        self.folders = folders
        self.root = folders.root

    def current_version(self) -> str | None:
        return self.folders.current_version(KIND)

    def config(self, version: str) -> dict:
        return self.folders.config(KIND, version)

    def save_model(self, model: CompletionModel, *, entities: list[str], relations: list[str], metrics: dict,
                   train_config: dict, fingerprint: str, parent: str | None, promote: bool = True,
                   reranker: Reranker | None = None) -> str:
        """Write a new version (all files into a hidden folder, then one rename: :mod:`mkg_common.artifacts`)
        and optionally make it current. A ``reranker`` fitted with the model is kept beside it
        (``rerank.json``)."""
        now = utc_now()
        version = f"{KIND}-{utc_stamp(now, 'microseconds')}-{fingerprint[:8]}"
        with publishing(self.folders.version_dir(KIND, version).parent, version) as tmp:
            _write_version(tmp, version, now, model, entities, relations, metrics, train_config, fingerprint, parent,
                           reranker)
        if promote:
            self.folders.promote(KIND, version)
        return version

    def load_model(self, version: str | None = None) -> tuple[CompletionModel, dict, dict]:
        """(model, config, vocab) of ``version`` (default: current)."""
        from safetensors.torch import load_file

        version = version or self.current_version()
        if version is None:
            raise FileNotFoundError(f"no current {KIND} model in {self.root}")
        cfg = self.config(version)
        folder = self.folders.version_dir(KIND, version)
        vocab = json.loads((folder / "vocab.json").read_text())
        model = CompletionModel(ModelConfig(**cfg["model"]), cfg["n_entities"], cfg["n_relations"])
        model.load_state_dict(load_file(str(folder / "weights.safetensors")))
        return model.eval(), cfg, vocab

    def load_reranker(self, version: str | None = None) -> Reranker | None:
        """The reranker saved with ``version`` (default: current); None when that run ranked by the model alone."""
        version = version or self.current_version()
        path = self.folders.version_dir(KIND, version) / "rerank.json"
        return Reranker.from_dict(json.loads(path.read_text())) if path.exists() else None


def _write_version(tmp: Path, version: str, now, model: CompletionModel, entities: list[str], relations: list[str],
                   metrics: dict, train_config: dict, fingerprint: str, parent: str | None,
                   reranker: Reranker | None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "weights.safetensors"))
    (tmp / "vocab.json").write_text(json.dumps({"entities": entities[:model.n_known_entities],
                                                "relations": relations}))
    config = {"kind": KIND, "version": version, "model": model.cfg.as_dict(), "n_relations": len(relations),
              "n_entities": model.n_known_entities, "created_at": utc_iso(now, "seconds"),
              "data_fingerprint": fingerprint, "train_config": train_config, "parent": parent}
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if reranker is not None:
        (tmp / "rerank.json").write_text(json.dumps(reranker.as_dict(precise=True), indent=1))


def warm_start(previous: CompletionModel, old_vocab: dict, entities: list[str], relations: list[str],
               n_known: int | None = None) -> CompletionModel:
    """A model for a grown vocabulary initialised from ``previous``: the
    projection, image term and relation operators of known relations are
    copied, residual rows follow their entity key; new rows start fresh."""
    n_known = len(entities) if n_known is None else n_known
    model = CompletionModel(previous.cfg, n_known, len(relations))
    state = previous.state_dict()
    own = model.state_dict()
    for name, value in state.items():
        if name.startswith(("project.", "visual.")):
            own[name] = value.clone()
    old_e = {k: i for i, k in enumerate(old_vocab["entities"])}
    if previous.cfg.residual:
        for i, key in enumerate(entities[:n_known]):
            j = old_e.get(key)
            if j is not None and j < previous.n_known_entities:
                own["residual.weight"][i] = state["residual.weight"][j]
    old_r = {r: i for i, r in enumerate(old_vocab["relations"])}
    n_old, n_new = previous.n_relations, len(relations)
    for i, rel in enumerate(relations):
        j = old_r.get(rel)
        if j is not None:
            own["relation"][i] = state["relation"][j]
            own["relation"][i + n_new] = state["relation"][j + n_old]
    model.load_state_dict(own)
    return model


def state_equal(a: CompletionModel, b: CompletionModel) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
