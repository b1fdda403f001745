"""Prototypes of the classes the labelled store already has: what "new" is measured against."""
from __future__ import annotations

import hashlib

import numpy as np

from extractors.kinds import MNER, MRE
from extractors.schema import NO_RELATION

from ..labelled import LabelledStore
from .graph import RELATION
from .texts import EmbedFn, normalise, pair_text, span_text


def _spans_of_tags(tags) -> list[tuple[int, int, str]]:
    from extractors.multimodal import bio_spans

    return bio_spans(tags)


def _sample(rows: list, n: int) -> list:
    return sorted(rows, key=lambda r: hashlib.sha256(r[0].encode()).hexdigest())[:n]


def known_prototypes(store: LabelledStore | None, kind: str, embed: EmbedFn, per_class: int) -> dict[str, np.ndarray]:
    """Mean embedding of (up to ``per_class``) labelled examples per known relation or entity type."""
    if store is None:
        return {}
    texts: dict[str, list[tuple[str, str]]] = {}
    if kind == RELATION:
        for ex in store.all(MRE.name):
            rel = ex.data["relation"]
            if rel != NO_RELATION:
                texts.setdefault(rel, []).append((ex.key, pair_text(ex.data["tokens"], ex.data["head"], ex.data["tail"])))
    else:
        for ex in store.all(MNER.name):
            for start, end, etype in _spans_of_tags(ex.data["tags"]):
                texts.setdefault(etype, []).append((f"{ex.key}|{start}", span_text(ex.data["tokens"], (start, end))))
    out = {}
    for name, rows in sorted(texts.items()):
        picked = [t for _, t in _sample(rows, per_class)]
        out[name] = normalise(np.asarray(embed(picked)).mean(0))
    return out
