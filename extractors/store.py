"""Versioned model artifacts with an atomically switched ``current`` pointer.

Layout: ``ROOT/<kind>/versions/<version>/{weights.safetensors, config.json,
metrics.json, ...}`` and ``ROOT/<kind>/current`` (a one-line file naming the
version, replaced with ``os.replace`` so a reader sees the old or the new
version, never half of one). Workers poll :meth:`ModelStore.current_version`
between batches to hot-reload.

A version is published in one step (:mod:`mkg_common.artifacts`, the one
publisher of every versioned artifact): every file of it (weights, config,
metrics and whatever its producer keeps beside them, such as continual
learning's rehearsal memory) is written into a hidden temporary folder,
fsynced, and renamed to the version's name in one ``os.replace``. A crash at
any point leaves either no version or a complete one; promotion is a second
durable rename, of the ``current`` pointer, after it.

A version is either *full* (every weight, encoders included) or an *adapter*
version (``config["peft"]``, see :mod:`extractors.adapters`): LoRA weights and
the non-encoder parameters only, plus the checksums of the frozen base
encoders it needs.

The package ships trained adapter versions (``extractors/shipped/``, same
layout). A store opened with ``shipped=True`` (``extractor.kind: auto``) falls
back to them, per kind, while it has no promoted version of its own: a fresh
install extracts with them, and a version promoted here (by ``mkg train
--promote``, ``mkg models promote`` or a continual update) supersedes them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping, Union

from mkg_common.artifacts import point_to, published, publishing, read_pointer, replace_file
from mkg_common.clock import utc_stamp

from .encoders import EncoderSpec, build_encoder
from .kinds import KINDS, get_kind

# What a version may carry beside its weights: raw bytes, text, or JSON-able data (written as JSON).
ExtraFile = Union[bytes, str, dict, list]
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def data_fingerprint(paths: Iterable[str | Path], limit: int | None = None) -> str:
    """sha256 over the training files' bytes (and the example limit, if any)."""
    h = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        h.update(Path(path).name.encode())
        h.update(Path(path).read_bytes())
    h.update(str(limit).encode())
    return h.hexdigest()


class ModelStore:
    def __init__(self, root: str | Path, shipped: bool | str | Path = False, kinds: tuple[str, ...] = KINDS) -> None:
        """``shipped``: fall back to the versions shipped in the package (or in this folder);
        ``kinds``: the model kinds this store holds (the completion store holds ``("completion",)``)."""
        self.root = Path(root)
        self.kinds = kinds
        fallback = SHIPPED_DIR if shipped is True else (Path(shipped) if shipped else None)
        self.fallback = ModelStore(fallback) if fallback is not None and fallback.resolve() != self.root.resolve() else None

    def _kind_dir(self, kind: str) -> Path:
        if self.kinds != KINDS:  # a store of other artifacts (the completion store)
            if kind not in self.kinds:
                raise ValueError(f"unknown model kind {kind!r}; expected one of {self.kinds}")
            return self.root / kind
        return self.root / get_kind(kind).name

    def _own_versions(self, kind: str) -> list[str]:
        """Published versions; a hidden folder is one still being written (or left by a crash)."""
        return published(self._kind_dir(kind) / "versions")

    def versions(self, kind: str) -> list[str]:
        """This store's versions and, with a fallback, the shipped ones."""
        own = self._own_versions(kind)
        return own + [v for v in (self.fallback.versions(kind) if self.fallback else []) if v not in own]

    def is_shipped(self, kind: str, version: str) -> bool:
        return version not in self._own_versions(kind) and self.fallback is not None \
            and version in self.fallback.versions(kind)

    def save(self, kind: str, model, spec: EncoderSpec, *, metrics: dict, fingerprint: str,
             train_config: dict | None = None, parent: str | None = None, save_dtype: str = "float32",
             files: Mapping[str, ExtraFile] | None = None) -> str:
        """Save a new version: every weight, or for a LoRA model only what training changed
        (``save_dtype="float16"`` halves that again; it is upcast at load).

        ``files``: more files of the version (name -> bytes, text or JSON-able data), written
        with the rest before the version becomes visible, so no reader ever sees it without them.
        """
        if save_dtype not in ("float32", "float16"):
            raise ValueError(f"save_dtype must be float32 or float16, not {save_dtype!r}")
        files = dict(files or {})
        reserved = {"weights.safetensors", "config.json", "metrics.json"} & set(files)
        if reserved or any(not name or "/" in name or name.startswith(".") for name in files):
            raise ValueError(f"extra files must be plain names other than the store's own: {sorted(files)}")
        stamp = utc_stamp()
        version = f"{kind}-{stamp}-{fingerprint[:8]}"
        with publishing(self._kind_dir(kind) / "versions", version) as tmp:
            self._write_version(tmp, kind, version, stamp, model, spec, metrics, fingerprint, train_config, parent,
                                save_dtype, files)
        return version

    @staticmethod
    def _write_version(tmp: Path, kind: str, version: str, stamp: str, model, spec: EncoderSpec, metrics: dict,
                       fingerprint: str, train_config: dict | None, parent: str | None, save_dtype: str,
                       files: dict) -> None:
        import torch
        from safetensors.torch import save_file

        from .adapters import base_checksums, compact, has_lora, trained_state

        enc = model.encoder
        adapter = has_lora(model)
        dtype = torch.float16 if save_dtype == "float16" else None
        state, meta = compact(trained_state(model) if adapter else model.state_dict(), dtype)
        save_file(state, str(tmp / "weights.safetensors"), metadata=meta)
        labels = get_kind(kind).labels(model)
        config = {"kind": kind, "version": version, "labels": labels, "encoder": asdict(spec),
                  "n_interact": enc.n_interact, "max_text_len": enc.max_text_len,
                  "shared_key_mode": enc.shared_key_mode, "created_at": stamp, "data_fingerprint": fingerprint,
                  "train_config": train_config or {}, "parent": parent, "format": "adapter" if adapter else "full",
                  "save_dtype": save_dtype, "image_gate": getattr(model, "image_gate", None) is not None}
        if adapter:
            config["peft"] = dict(enc.lora)
            config["base_encoders"] = base_checksums(enc, spec)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        for name, content in files.items():
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content if isinstance(content, str)
                                        else json.dumps(content, indent=1, ensure_ascii=False), encoding="utf-8")

    def promote(self, kind: str, version: str) -> None:
        if version not in self.versions(kind):
            raise ValueError(f"no {kind} version {version!r} in {self.root}")
        point_to(self._kind_dir(kind) / "current", version)  # a fresh store may promote a shipped version

    def own_current_version(self, kind: str) -> str | None:
        """The version promoted in this store (never a shipped fallback)."""
        return read_pointer(self._kind_dir(kind) / "current")

    def current_version(self, kind: str) -> str | None:
        """The promoted version, else (with ``shipped``) the shipped one."""
        own = self.own_current_version(kind)
        if own is None and self.fallback is not None:
            return self.fallback.current_version(kind)
        return own

    def version_dir(self, kind: str, version: str) -> Path:
        """The folder of one version (weights, config, metrics, and what continual learning keeps)."""
        own = self._kind_dir(kind) / "versions" / version
        if not own.exists() and self.fallback is not None:
            shipped = self.fallback.version_dir(kind, version)
            if shipped.exists():
                return shipped
        return own

    def origin(self, kind: str, version: str) -> str:
        """shipped (in the package), continual (a continual update) or trained (``mkg train``)."""
        if self.is_shipped(kind, version):
            return "shipped"
        folder = self.version_dir(kind, version)
        if (folder / "continual.json").exists() or "task" in self.config(kind, version).get("train_config", {}):
            return "continual"
        return "trained"

    def config(self, kind: str, version: str) -> dict:
        return json.loads((self.version_dir(kind, version) / "config.json").read_text())

    def metrics(self, kind: str, version: str) -> dict:
        return json.loads((self.version_dir(kind, version) / "metrics.json").read_text())

    def record_metrics(self, kind: str, version: str, key: str, value: dict) -> None:
        """Add ``key`` (e.g. the test scores of ``mkg evaluate --record``) to a version's metrics.json."""
        if self.is_shipped(kind, version):
            raise ValueError(f"{version} is a shipped version: its metrics are part of the package")
        path = self.version_dir(kind, version) / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics[key] = value
        replace_file(path, json.dumps(metrics, indent=2))

    def load(self, kind: str, version: str | None = None, device: str = "cpu"):
        """(model, task, config) for ``version`` (default: current)."""
        from safetensors.torch import load_file

        from safetensors import safe_open

        from .adapters import LoraSpec, add_lora, expand, is_base_key, verify_base

        version = version or self.current_version(kind)
        if version is None:
            raise FileNotFoundError(f"no current {kind} model in {self.root}")
        cfg = self.config(kind, version)
        spec = EncoderSpec(**cfg["encoder"])
        adapter = cfg.get("peft") is not None
        # an adapter version needs the pretrained base weights; a full version brings its own
        encoder, tokenizer = build_encoder(spec, pretrained=adapter, n_interact=cfg["n_interact"],
                                           max_text_len=cfg["max_text_len"], shared_key_mode=cfg["shared_key_mode"])
        if adapter:
            verify_base(encoder, spec, cfg.get("base_encoders", {}), f"{kind} version {version}")
            add_lora(encoder, LoraSpec.from_dict(cfg["peft"]))
        task = get_kind(kind).task(tokenizer)
        model = task.build(encoder, cfg["labels"], image_gate=cfg.get("image_gate", False))
        path = str(self.version_dir(kind, version) / "weights.safetensors")
        with safe_open(path, "pt") as fh:
            metadata = fh.metadata()
        state = expand(load_file(path), metadata)
        if adapter:
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not is_base_key(k)]
            if missing or unexpected:
                raise RuntimeError(f"{kind} version {version} does not fit its model: missing {missing[:5]}, "
                                   f"unexpected {unexpected[:5]}")
        else:
            model.load_state_dict(state)
        return model.to(device).eval(), task, cfg


def version_rows(store: ModelStore) -> list[dict]:
    """Every version of every kind with its origin, size, data fingerprint and val / test F1
    (``mkg models list``, the console's models page)."""
    rows = []
    for kind in store.kinds:
        current = store.current_version(kind)
        for version in store.versions(kind):
            cfg, folder = store.config(kind, version), store.version_dir(kind, version)
            try:
                metrics = store.metrics(kind, version)
            except FileNotFoundError:
                metrics = {}
            test = metrics.get("test") or {}
            rows.append({"kind": kind, "version": version, "current": version == current,
                         "origin": store.origin(kind, version), "format": cfg.get("format", "full"),
                         "mb": round(sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6, 2),
                         "data_fingerprint": cfg.get("data_fingerprint", ""), "val_f1": (metrics.get("val") or {}).get("f1"),
                         "test_f1": test.get("f1"), "parent": cfg.get("parent"), "path": str(folder)})
    return rows
