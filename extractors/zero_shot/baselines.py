"""The comparisons the paper reports, in the same harness as the scorer.

``Proto`` (no training): a sample is labelled with the class whose phrase
vector is nearest (cosine) to the sample's frozen-encoder vector. Which
vector stands for the sample (the sentence, the two entities, or all three
averaged) is chosen on the validation classes, never the test ones.

``ZS-BERT-style`` (Chen and Ku, NAACL 2021): a learned projection of the
sample's ``[CLS ; E1 ; E2]`` into the space of the frozen class-phrase
vectors, trained with the same margin ranking loss over seen classes, and
nearest-class prediction. It differs from the scorer in that the class side
is fixed (no class projection) and there is no expert block or contrastive term.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import N_TEXT_TOKENS, SampleFeatures
from .scorer import margin_ranking
from .training import macro_prf

PROTO_VIEWS = ("sentence", "entities", "all")


def proto_vectors(feats: SampleFeatures, view: str) -> torch.Tensor:
    if view == "sentence":
        x = feats.text[:, 0]
    elif view == "entities":
        x = feats.text[:, 1:N_TEXT_TOKENS].mean(1)
    elif view == "all":
        x = feats.text.mean(1)
    else:
        raise ValueError(f"unknown Proto view {view!r}; one of {PROTO_VIEWS}")
    return F.normalize(x, dim=-1)


def proto_scores(feats: SampleFeatures, class_vectors: torch.Tensor, view: str) -> torch.Tensor:
    """[N, C] cosines of the samples' ``view`` vectors to the class phrase vectors."""
    return proto_vectors(feats, view) @ F.normalize(class_vectors, dim=-1).T


def choose_proto_view(val: SampleFeatures, val_labels: torch.Tensor, val_vectors: torch.Tensor) -> str:
    """The view with the best macro-F1 on the validation classes."""
    classes = range(val_vectors.shape[0])
    return max(PROTO_VIEWS, key=lambda v: macro_prf(val_labels.tolist(),
                                                    proto_scores(val, val_vectors, v).argmax(1).tolist(), classes)["f1"])


class ZSBertStyle(nn.Module):
    def __init__(self, text_dim: int = 384, margin: float = 0.2, dropout: float = 0.1) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(N_TEXT_TOKENS * text_dim, text_dim), nn.GELU(),
                                     nn.Linear(text_dim, text_dim))
        self.margin = margin

    def scores(self, feats: SampleFeatures, class_vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(feats.text.flatten(1)), dim=-1) @ F.normalize(class_vectors, dim=-1).T

    def loss(self, feats: SampleFeatures, labels: torch.Tensor, class_vectors: torch.Tensor) -> tuple[torch.Tensor, dict]:
        ranking = margin_ranking(self.scores(feats, class_vectors), labels, self.margin)
        return ranking, {"ranking": float(ranking.detach())}
