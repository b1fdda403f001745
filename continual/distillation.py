"""Attention distillation (MSPT Eq. 12-14): half the L1 distance of the height-pooled attention maps.

After each task a frozen copy of the model is kept. While learning the next
task, the attention maps of the top interaction layers (the layers that
attend through the shared key bank) are pooled along the height (query)
dimension and compared with the old model's on the same batch:

    L_AD = sum_layers sum_{m in text, vision} ReLU(P_old^m - P_new^m),
    P^m  = sum over queries of A^m   (per key)

The paper calls it asymmetric: the ReLU penalises only attention the new
model *withdraws* from a key, meant to leave it free to attend to new things
for new classes (plasticity) while pulling it back when it stops attending to
what old classes relied on (stability). L_all = lambda * L_AD + L_task.

What it computes here is symmetric: every softmax row sums to 1, so both pooled maps
sum to the number of real queries, what the new model withdraws from some
keys it gives to others, and sum ReLU(P_old - P_new) = sum ReLU(P_new -
P_old) = 0.5 * ||P_old - P_new||_1. The loss is half the L1 distance of the
pooled maps, with the same gradient w.r.t. the attention logits
(tests/unit/test_continual.py demonstrates it on random softmax rows). The
ReLU only makes a difference for maps that are not normalised, which this
model never produces. So the loss is named for what it computes
(:func:`pooled_attention_distance`); the ReLU form is kept, which equals it on
this model and follows the paper's equation on any other.

Normalisation: the pooled difference is summed over keys and divided by the
number of real (unpadded) queries, then averaged over batch and heads; each
layer-and-modality term is thus in [0, 1] whatever the sequence length, so
``lambda`` means the same for short and long posts. Padded queries are
masked out. With no old model (the first task) the loss is exactly zero.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from extractors.fusion import NO_IMAGE_TOKENS, StreamOutput

from .objectives import encoder_outputs


def pooled_attention_distance(old: torch.Tensor, new: torch.Tensor,
                              query_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One layer and modality: sum over keys of ReLU(P_old - P_new) per real query, which for softmax
    rows is half the L1 distance of the height-pooled maps. ``old``/``new``: [B, H, Q, K] attention
    probabilities; ``query_mask``: [B, Q], true for real queries."""
    if query_mask is None:
        query_mask = torch.ones(old.shape[0], old.shape[2], dtype=torch.bool, device=old.device)
    m = query_mask[:, None, :, None].to(new.dtype)
    pooled_old = (old.to(new.dtype) * m).sum(-2)  # [B, H, K]: height (query) pooling
    pooled_new = (new * m).sum(-2)
    n_queries = m.sum(-2).clamp(min=1.0)  # [B, 1, 1]
    return (F.relu(pooled_old - pooled_new) / n_queries).sum(-1).mean()


def vision_query_mask(has_image: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """Posts without an image use only the learned no-image tokens; the rest of their row is padding."""
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    if has_image is not None and length > 1 + NO_IMAGE_TOKENS:
        mask[~has_image.to(device), 1 + NO_IMAGE_TOKENS:] = False
    return mask


def attention_distillation(old: StreamOutput, new: StreamOutput, text_mask: torch.Tensor,
                           has_image: torch.Tensor | None = None,
                           image_index: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the interaction layers and both modalities. ``image_index`` (row -> image) is
    given when rows share images: ``has_image`` is then per image, the attention maps per row."""
    total = new.text.new_zeros(())
    has_image = _per_row(has_image, image_index)
    t_mask = text_mask.bool()
    for a_old, a_new in zip(old.text_attn, new.text_attn):
        total = total + pooled_attention_distance(a_old, a_new, t_mask)
    for a_old, a_new in zip(old.vision_attn, new.vision_attn):
        v_mask = vision_query_mask(has_image, a_new.shape[0], a_new.shape[2], a_new.device)
        total = total + pooled_attention_distance(a_old, a_new, v_mask)
    return total


def row_has_image(batch) -> torch.Tensor | None:
    """Whether each row's post has a picture: a batch whose rows share pictures (``image_index``,
    e.g. unrelated pictures attached in training) keeps ``has_image`` per picture, not per row."""
    return _per_row(batch.has_image, getattr(batch, "image_index", None))


def _per_row(has_image: torch.Tensor | None, image_index: torch.Tensor | None) -> torch.Tensor | None:
    """Per-picture flags read through the row -> picture index (unchanged without one)."""
    if has_image is None or image_index is None:
        return has_image
    return has_image[image_index.to(has_image.device)]


class AttentionDistiller:
    """Keeps the frozen previous model and computes lambda-free L_AD per batch."""

    def __init__(self, lam: float) -> None:
        self.lam = lam
        self.old: nn.Module | None = None
        self.task = 0
        self.history: list[dict] = []  # per step: task, l_ad

    def snapshot(self, model: nn.Module) -> None:
        """Freeze a copy of ``model`` as the teacher for the next task."""
        old = copy.deepcopy(model)
        old.eval()
        for p in old.parameters():
            p.requires_grad_(False)
        self.old = old

    def loss(self, batch, new: StreamOutput) -> torch.Tensor:
        """L_AD of this batch (0 without an old model); logged per call."""
        if self.old is None:
            value = new.text.new_zeros(())
        else:
            with torch.no_grad():
                old_out = encoder_outputs(self.old, batch)
            value = attention_distillation(old_out, new, batch.attention_mask, row_has_image(batch))
        self.history.append({"task": self.task, "l_ad": float(value.detach())})
        return value

    def mean_loss(self, task: int) -> float:
        values = [h["l_ad"] for h in self.history if h["task"] == task]
        return sum(values) / len(values) if values else 0.0
