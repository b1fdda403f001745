"""One forward pass that yields everything the continual losses need.

Gradient modulation needs each modality's half of the classifier, attention
distillation needs the interaction layers' attention maps, and the task loss
needs the summed logits. Computing them in one pass (instead of calling
``model.loss`` and then the encoder again) keeps a training step at the cost
of a plain one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from extractors.fusion import StreamOutput
from extractors.models import MNERModel, MREModel


@dataclass
class ForwardParts:
    loss: torch.Tensor  # the task loss (cross-entropy / CRF negative log-likelihood)
    text_logits: torch.Tensor  # [N, C] text half of the classifier, one row per decision
    vision_logits: torch.Tensor  # [N, C] vision half
    gold: torch.Tensor  # [N] gold label ids
    stream: StreamOutput  # encoder output with the attention maps


def forward_parts(model, batch) -> ForwardParts:
    """MRE: one decision per example; MNER: one per (unpadded) word."""
    if isinstance(model, MREModel):
        h_t, h_v, out = model.representations(batch)
        lt, lv = model.classifier.halves(h_t, h_v)
        loss = F.cross_entropy(lt + lv, batch.labels)
        return ForwardParts(loss, lt, lv, batch.labels, out)
    if isinstance(model, MNERModel):
        h_t, h_v, out = model.word_features(batch)
        et, ev = model.emissions.halves(h_t, h_v)
        loss = -model.crf((et + ev).float(), batch.tags, mask=batch.word_mask, reduction="mean")
        mask = batch.word_mask
        return ForwardParts(loss, et[mask], ev[mask], batch.tags[mask], out)
    raise TypeError(f"no continual objective for {type(model).__name__}")


def encoder_outputs(model, batch) -> StreamOutput:
    """The encoder alone (for the frozen old model in distillation)."""
    return model.encoder(batch.input_ids, batch.attention_mask, batch.pixels, batch.has_image,
                         getattr(batch, "image_index", None))
