"""What is embedded for an observation: its context, with the pair's names masked or the span marked."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pipeline.observations import PAIR, Observation

EmbedFn = Callable[[Sequence[str]], np.ndarray]  # texts -> vectors (extractors.encoders.SentenceEmbedder)
CONTEXT_WORDS = 8  # words kept either side of the marked span(s)


def _window(tokens: Sequence[str], lo: int, hi: int) -> tuple[int, int]:
    return max(0, lo - CONTEXT_WORDS), min(len(tokens), hi + CONTEXT_WORDS)


def pair_text(tokens: Sequence[str], head: Sequence[int], tail: Sequence[int]) -> str:
    """The pair's context with head and tail replaced by markers.

    Masking the names makes posts about different people cluster by what is
    said about them (the relation pattern), not by who they are.
    """
    lo, hi = _window(tokens, min(head[0], tail[0]), max(head[1], tail[1]))
    out, i = [], lo
    while i < hi:
        if i == head[0]:
            out.append("[head]")
            i = max(head[1], i + 1)
        elif i == tail[0]:
            out.append("[tail]")
            i = max(tail[1], i + 1)
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def span_text(tokens: Sequence[str], span: Sequence[int]) -> str:
    """The span, kept (a type is about what the name is), marked within its context."""
    lo, hi = _window(tokens, span[0], span[1])
    return " ".join([*tokens[lo:span[0]], "[entity]", *tokens[span[0]:span[1]], "[/entity]", *tokens[span[1]:hi]])


def observation_text(obs: Observation) -> str:
    if obs.kind == PAIR and obs.tail is not None:
        return pair_text(obs.tokens, obs.head, obs.tail)
    return span_text(obs.tokens, obs.head)


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), in float64."""
    v = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)
