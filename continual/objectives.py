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

from extractors.fusion import StreamOutput


@dataclass
class ForwardParts:
    loss: torch.Tensor  # the task loss (cross-entropy / CRF negative log-likelihood)
    text_logits: torch.Tensor  # [N, C] text half of the classifier, one row per decision
    vision_logits: torch.Tensor  # [N, C] vision half
    gold: torch.Tensor  # [N] gold label ids
    stream: StreamOutput  # encoder output with the attention maps


def forward_parts(model, batch) -> ForwardParts:
    """MRE: one decision per example; MNER: one per (unpadded) word (each model knows which)."""
    return ForwardParts(*model.decision_parts(batch))


def encoder_outputs(model, batch) -> StreamOutput:
    """The encoder alone (for the frozen old model in distillation)."""
    return model.encoder(batch.input_ids, batch.attention_mask, batch.pixels, batch.has_image,
                         getattr(batch, "image_index", None))
