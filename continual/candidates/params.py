"""Thresholds of candidate discovery (cosine similarities of MiniLM sentence embeddings).

One home for these settings and their defaults: the ``novelty:`` section of
the configuration (``pipeline.config.NoveltyConfig``) extends this model with
what the worker needs, so ``cfg.novelty`` is passed to discovery as it is.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DiscoveryParams(BaseModel):
    """Raw cosine similarities: unrelated tweets still score about 0.5."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    min_size: int = Field(5, ge=2)  # a candidate needs this many observations in the window
    min_density: float = Field(0.72, ge=-1.0, le=1.0)  # mean similarity of members to their centroid
    max_known_similarity: float = Field(0.85, ge=-1.0, le=1.0)  # "new": centroid below this to every known class
    link_similarity: float = Field(0.55, ge=-1.0, le=1.0)  # average-linkage merge threshold
    same_candidate_similarity: float = Field(0.9, ge=-1.0, le=1.0)  # re-runs update a candidate this close
    max_observations: int = Field(3000, ge=10)  # per run and kind (clustering is quadratic)
    examples: int = Field(5, ge=1)  # example posts per candidate
    max_members: int = Field(200, ge=1)  # members kept on a node (they become the labelled examples)
    prototype_examples: int = Field(32, ge=1)  # labelled examples embedded per known class
