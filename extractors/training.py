"""One training loop for both tasks: AdamW, warm-up, best-on-validation, resume.

CPU by default; CUDA with bf16 autocast when available. A checkpoint after
every epoch (model, optimiser, scheduler, RNG states) lets an interrupted run
resume where it stopped.
"""
from __future__ import annotations

import logging
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .device import autocast, resolve_device

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 16
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3  # classifier, CRF, key bank, no-image tokens
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    device: str = "auto"
    freeze_vision: str = "auto"  # auto: freeze the ViT backbone when no training example has an image
    eval_batch_size: int = 64
    progress: bool = True
    # parameter-efficient fine-tuning: "none" (every text-encoder weight trains) or "lora"
    # (LoRA adapters on the text stream; ``lr`` is then the adapters' learning rate)
    peft: str = "none"
    lora_r: int = 16
    lora_alpha: int | None = None  # default 2 * lora_r
    lora_dropout: float = 0.1
    # pictures (extractors.augment): the research data has none, production posts do
    image_gate: bool = True  # new models get an ImageGate on the vision half of their classifier
    image_augment: float = 0.5  # share of training rows given an unrelated picture, label kept (0: text only)
    train_only: str = "all"  # "image_gate": only the image gate trains (it learns to shut out pictures)

    def resolved_device(self) -> str:
        return resolve_device(self.device)


@dataclass
class TrainResult:
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _head_params(model) -> set[int]:
    encoder = model.encoder
    backbone = set(map(id, encoder.text.parameters())) | set(map(id, encoder.vision.parameters()))
    return {id(p) for p in model.parameters() if id(p) not in backbone}


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    heads = _head_params(model)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in heads and p.ndim > 1], "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if id(p) not in heads and p.ndim <= 1], "lr": cfg.lr, "weight_decay": 0.0},
        {"params": [p for p in params if id(p) in heads], "lr": cfg.head_lr, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def linear_warmup(optimizer, total_steps: int, warmup_ratio: float):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def apply_freeze(model, cfg: TrainConfig, any_image: bool) -> None:
    from .adapters import has_lora

    # with LoRA adapters the pretrained encoders stay frozen (DINOv2 always; MiniLM but its adapters)
    freeze = has_lora(model) or cfg.freeze_vision == "yes" or (cfg.freeze_vision == "auto" and not any_image)
    for p in model.encoder.vision.parameters():
        p.requires_grad = not freeze
    if cfg.train_only == "image_gate":
        # a trained model made robust to pictures without touching what it learned from text
        if model.image_gate is None:
            raise ValueError("train_only='image_gate' needs a model with an image gate")
        keep = {id(p) for p in model.image_gate.parameters()}
        for p in model.parameters():
            p.requires_grad = id(p) in keep
    elif cfg.train_only != "all":
        raise ValueError(f"train_only must be 'all' or 'image_gate', not {cfg.train_only!r}")


def fit(task, model, train: Sequence, val: Sequence, cfg: TrainConfig, checkpoint_dir: Path | None = None,
        resume: bool = False, loss_fn=None, on_step=None, stop_after_epoch: int | None = None) -> TrainResult:
    """Train ``model`` on ``train``; keep the weights that scored best on ``val``.

    ``loss_fn(model, batch)`` replaces ``model.loss`` (continual learning adds
    distillation); ``on_step(model)`` runs after backward, before the optimiser
    step (gradient modulation). ``stop_after_epoch`` ends the run early after
    that epoch's checkpoint, as an interruption would.
    """
    seed_everything(cfg.seed)
    device = cfg.resolved_device()
    model.to(device)
    apply_freeze(model, cfg, any_image=any(getattr(ex, "image", None) is not None for ex in train))
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    optimizer = make_optimizer(model, cfg)
    scheduler = linear_warmup(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_ratio)
    rng = random.Random(cfg.seed)
    pictures = None
    if cfg.image_augment > 0:
        from .augment import UnrelatedPictures

        pictures = UnrelatedPictures(cfg.seed + 1)
    result = TrainResult(-1, {"f1": -1.0})
    best_state = None
    start_epoch = 0
    ckpt_path = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if resume and ckpt_path and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        if pictures is not None and state.get("pictures_rng") is not None:
            pictures.rng.setstate(state["pictures_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"] + 1
        result = TrainResult(state["best_epoch"], state["best_val"], state["history"])
        best_state = state["best_state"]
        log.info("resumed", extra={"epoch": start_epoch})
    cast = autocast(device)  # bf16 on CUDA
    loss_fn = loss_fn or (lambda m, b: m.loss(b))
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        total, n = 0.0, 0
        bar = tqdm(task.batches(model, train, cfg.batch_size, shuffle=True, rng=rng), total=steps_per_epoch,
                   desc=f"{task.kind} epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
        for batch in bar:
            if pictures is not None:
                from .augment import with_unrelated_pictures

                batch = with_unrelated_pictures(batch, pictures, cfg.image_augment)
            batch = batch.to(device)
            with cast:
                loss = loss_fn(model, batch)
            loss.backward()
            if on_step is not None:
                on_step(model)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        # without validation data every epoch counts as the best so far (the last one is kept)
        val_metrics = task.evaluate(model, val, device=device) if val else {"f1": float(epoch)}
        result.history.append({"epoch": epoch + 1, "train_loss": total / max(n, 1), **{f"val_{k}": v for k, v in val_metrics.items()}})
        log.info("epoch done", extra=result.history[-1])
        if cfg.progress:
            tqdm.write(f"{task.kind} epoch {epoch + 1}: loss {total / max(n, 1):.4f} val F1 {val_metrics['f1']:.2f}", file=sys.stderr)
        if val_metrics["f1"] > result.best_val["f1"]:
            result.best_epoch, result.best_val = epoch + 1, val_metrics
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if ckpt_path:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rng.getstate(),
                        "pictures_rng": pictures.rng.getstate() if pictures is not None else None,
                        "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_epoch": result.best_epoch,
                        "best_val": result.best_val, "history": result.history, "best_state": best_state,
                        "config": asdict(cfg)}, tmp)
            tmp.replace(ckpt_path)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
