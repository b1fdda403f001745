"""Text-aware entity encoder + ComplEx relation operator.

An entity's vector is ``P(text) + residual[e] + V(image)``: ``P`` projects the
frozen MiniLM embedding of its name and context, so any entity with a text
(one first seen an hour ago included) gets a vector without retraining;
``residual`` is a learned per-entity correction, present only for entities
the model trained on (zero for the rest); ``V`` is the optional visual term
over image features (``image_dim = 0`` switches it off; entities without an
image contribute zero). Relations are ComplEx operators, so scoring a query
against every candidate is one matrix product: cheap training with many
negatives and cheap full ranking on a CPU. Inverse relations have their own
operators (``r + n_relations``), which answer head queries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    text_dim: int  # width of the text embeddings (the encoder's, never assumed)
    rank: int  # complex dimensions; vectors hold 2 * rank reals (production: completion.rank in the config)
    hidden: int = 512
    residual: bool = True
    image_dim: int = 0  # 0: no visual term

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class EntityFeatures:
    """Per-entity inputs, row ``i`` = entity ``i``. ``image`` rows of entities
    without an image are ignored (``has_image`` False)."""

    text: torch.Tensor  # [N, text_dim]
    image: torch.Tensor | None = None  # [N, image_dim]
    has_image: torch.Tensor | None = None  # [N] bool

    def __len__(self) -> int:
        return len(self.text)


class CompletionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, n_entities: int, n_relations: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_relations = n_relations
        d = 2 * cfg.rank
        self.project = nn.Sequential(nn.Linear(cfg.text_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, d))
        # sparse: a step updates only the rows of the entities it saw (SparseAdam)
        self.residual = nn.Embedding(n_entities if cfg.residual else 0, d, sparse=True)
        nn.init.zeros_(self.residual.weight)
        self.visual = nn.Linear(cfg.image_dim, d, bias=False) if cfg.image_dim else None
        # start near the identity (1 + 0i): a fresh model ranks by projected text similarity
        rel = torch.zeros(2 * n_relations, d)
        rel[:, :cfg.rank] = 1.0
        self.relation = nn.Parameter(rel + 0.01 * torch.randn_like(rel))

    @property
    def n_known_entities(self) -> int:
        """Entities ``0 .. n-1`` have a learned residual; later ids are unseen."""
        return self.residual.num_embeddings

    def entities(self, feats: EntityFeatures, ids: torch.Tensor, residual_dropout: float = 0.0) -> torch.Tensor:
        """``[len(ids), 2 * rank]`` entity vectors."""
        vec = self.project(feats.text[ids])
        if self.n_known_entities:
            known = ids < self.n_known_entities
            res = self.residual(ids.clamp(max=self.n_known_entities - 1)) * known.unsqueeze(-1)
            if residual_dropout and self.training:
                res = res * (torch.rand(len(ids), 1) >= residual_dropout)
            vec = vec + res
        if self.visual is not None and feats.image is not None:
            has = feats.has_image[ids] if feats.has_image is not None else torch.ones(len(ids), dtype=torch.bool)
            vec = vec + self.visual(feats.image[ids]) * has.unsqueeze(-1)
        return vec

    def query(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Complex product head ∘ relation, as [re ; im]."""
        k = self.cfg.rank
        a, b = heads[:, :k], heads[:, k:]
        r = self.relation[relations]
        c, d = r[:, :k], r[:, k:]
        return torch.cat([a * c - b * d, a * d + b * c], dim=1)

    @staticmethod
    def score(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Re<h ∘ r, conj(t)> for every (query, candidate) pair: [B, C]."""
        return queries @ candidates.T

    @torch.no_grad()
    def all_entities(self, feats: EntityFeatures, batch_size: int = 8192) -> torch.Tensor:
        ids = torch.arange(len(feats))
        return torch.cat([self.entities(feats, ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)])

    def scorer(self, feats: EntityFeatures):
        """A ``(entities, relations) -> [B, N]`` function for :mod:`.evaluate`."""
        table = self.all_entities(feats)

        def score(ents: torch.Tensor, rels: torch.Tensor) -> torch.Tensor:
            return self.score(self.query(table[ents], rels), table)

        return score
