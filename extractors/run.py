"""Train and evaluate extractors end to end (what ``mkg train`` / ``mkg evaluate`` call)."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from .encoders import EncoderSpec, build_encoder
from .kinds import MNER, get_kind
from .metrics import ner_entity_prf, ner_per_type
from .store import ModelStore, data_fingerprint
from .training import TrainConfig, fit, seed_everything

log = logging.getLogger(__name__)

SPLIT_NAMES = {
    "train": ("mnre_train.txt", "train.txt"),
    "val": ("mnre_val.txt", "valid.txt", "val.txt"),
    "test": ("mnre_test.txt", "test.txt"),
}


def split_file(data: str | Path, split: str) -> Path:
    """``data`` may be a file or a folder holding MNRE or CoNLL split files."""
    data = Path(data)
    if data.is_file():
        return data
    for name in SPLIT_NAMES[split]:
        if (data / name).exists():
            return data / name
    raise FileNotFoundError(f"no {split} split in {data} (looked for {', '.join(SPLIT_NAMES[split])})")


def read_examples(kind: str, path: Path, limit: int | None = None) -> list:
    examples = get_kind(kind).read(path)
    return examples[:limit] if limit else examples


def train(kind: str, data: str | Path, store_root: str | Path, cfg: TrainConfig, spec: EncoderSpec = EncoderSpec(),
          limit: int | None = None, promote: bool = False, resume: bool = False,
          checkpoint_dir: Path | None = None, save_dtype: str = "float32") -> tuple[str, dict]:
    """Train on the train split, select on val, save a version (and promote it).

    ``cfg.peft == "lora"``: LoRA adapters on the text stream, the version holds
    only what training changed (:mod:`extractors.adapters`).
    """
    import time

    train_path, val_path = split_file(data, "train"), split_file(data, "val")
    train_ex = read_examples(kind, train_path, limit)
    val_ex = read_examples(kind, val_path, limit // 4 if limit else None)
    seed_everything(cfg.seed)  # the new layers' initial weights come from the seed, not from the process
    encoder, tokenizer = build_encoder(spec)
    task = get_kind(kind).task(tokenizer)
    model = task.build(encoder, task.labels_from(train_ex), image_gate=cfg.image_gate)
    if cfg.peft == "lora":
        from .adapters import LoraSpec, add_lora

        add_lora(model.encoder, LoraSpec(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
    elif cfg.peft != "none":
        raise ValueError(f"unknown peft method {cfg.peft!r} (none or lora)")
    store = ModelStore(store_root)
    fingerprint = data_fingerprint([train_path], limit)
    ckpt = checkpoint_dir or Path(store_root) / kind / "checkpoints" / (fingerprint[:12] + ("" if cfg.peft == "none" else f"-{cfg.peft}"))
    started = time.perf_counter()
    result = fit(task, model, train_ex, val_ex, cfg, checkpoint_dir=ckpt, resume=resume)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    metrics = {"val": result.best_val, "best_epoch": result.best_epoch, "history": result.history,
               "train_examples": len(train_ex), "val_examples": len(val_ex),
               "train_seconds": round(time.perf_counter() - started, 1), "trainable_params": trainable}
    version = store.save(kind, model, spec, metrics=metrics, fingerprint=fingerprint,
                         train_config=asdict(cfg), save_dtype=save_dtype)
    if promote:
        store.promote(kind, version)
    return version, metrics


def train_image_gate(kind: str, data: str | Path, source: ModelStore, base: str, store_root: str | Path,
                     cfg: TrainConfig, save_dtype: str = "float32", limit: int | None = None) -> tuple[str, dict]:
    """A new version of ``base`` that unrelated pictures do not sway: only its image gate (added
    if it has none) trains, on the train split with unrelated pictures attached
    (``cfg.image_augment``), so it learns to shut out a picture that says nothing; every other
    weight, and so what the model learned from text, is kept.
    ``base`` is read from ``source``, the new version saved in ``store_root``; ``limit``: the first
    N training examples only (the gate has a few hundred weights)."""
    import time

    from .models import ImageGate

    if cfg.train_only != "image_gate" or cfg.image_augment <= 0:
        raise ValueError("train_image_gate needs train_only='image_gate' and image_augment > 0")
    model, task, base_cfg = source.load(kind, base)
    if model.image_gate is None:
        head = model.head
        model.image_gate = ImageGate(head.text.in_features, head.vision.in_features)
    train_path, val_path = split_file(data, "train"), split_file(data, "val")
    train_ex, val_ex = read_examples(kind, train_path, limit), read_examples(kind, val_path)
    started = time.perf_counter()
    result = fit(task, model, train_ex, val_ex, cfg)
    metrics = {"val": result.best_val, "best_epoch": result.best_epoch, "history": result.history,
               "train_examples": len(train_ex), "val_examples": len(val_ex),
               "train_seconds": round(time.perf_counter() - started, 1),
               "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "base_train": source.metrics(kind, base)}
    spec = EncoderSpec(**base_cfg["encoder"])
    train_config = {**base_cfg["train_config"], "image_gate_stage": asdict(cfg)}
    version = ModelStore(store_root).save(kind, model, spec, metrics=metrics, fingerprint=base_cfg["data_fingerprint"],
                                          train_config=train_config, parent=base, save_dtype=save_dtype)
    return version, metrics


def evaluate(kind: str, data: str | Path, store_root: str | Path, version: str | None = None,
             device: str = "cpu", limit: int | None = None, shipped: bool = False) -> dict:
    """P/R/F1 on the test split, and per relation (MRE) or entity type (MNER) with support counts.
    ``shipped``: versions shipped in the package count as part of the store."""
    path = split_file(data, "test")
    examples = read_examples(kind, path, limit)
    model, task, cfg = ModelStore(store_root, shipped=shipped).load(kind, version, device=device)
    metrics = get_kind(kind).evaluate(task, model, examples, device=device, per_class=True)
    return {"version": cfg["version"], "data": str(path), "examples": len(examples), **metrics}


def evaluate_spacy_ner(data: str | Path, limit: int | None = None) -> dict:
    """spaCy en_core_web_sm on the same sentences, scored with the same metric."""
    from .spacy_ner import SpacyExtractor

    path = split_file(data, "test")
    examples = read_examples(MNER.name, path, limit)
    pred = SpacyExtractor().bio_tags([e.tokens for e in examples])
    gold = [e.tags for e in examples]
    return {"model": "spacy en_core_web_sm 3.8", "data": str(path), "examples": len(examples),
            **ner_entity_prf(gold, pred), "per_type": ner_per_type(gold, pred)}



