"""What the graph stores: entity nodes, facts between them, posts as provenance.

Rows are aggregated per node/edge before they are written, so a batch sends
each key once and the Cypher never has to merge duplicates within a batch.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from mkg_common.text import RETWEET_PREFIX, URL

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = " \t\"'`.,;:!?()[]{}<>#@"


def invisible_free(value: str) -> str:
    """``value`` without format and control characters (Unicode Cf, and Cc other than whitespace).

    Zero-width spaces and joiners, bidi marks and overrides, soft hyphens and
    the BOM render as nothing, so ``PER:\u200bbarack obama`` would be a second
    node for the same name; control characters carry no meaning in a name
    either, and FalkorDB's index cannot find a string holding U+0001 again
    (every re-delivery would add a node). Whitespace controls (tab, newline)
    are kept here and collapsed to one space by the callers.
    """
    return "".join(ch for ch in value if unicodedata.category(ch) not in ("Cf", "Cc") or ch.isspace())


def clean_name(name: str) -> str:
    """An entity name as stored: invisible characters removed, whitespace collapsed."""
    return _SPACE.sub(" ", invisible_free(name)).strip()


def evidence_key(text: str) -> str:
    """Which posts are one piece of evidence: a retweet (``RT @who: ...``), an exact copy, or a copy
    differing only in case, spacing or links shares its original's key; other posts are independent."""
    import hashlib

    norm = _SPACE.sub(" ", URL.sub(" ", RETWEET_PREFIX.sub("", invisible_free(text)))).strip().casefold()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def canonical_key(entity_type: str, name: str) -> str:
    """Node identity: type plus a normalised surface form (``PER:barack obama``)."""
    norm = unicodedata.normalize("NFKC", invisible_free(name)).casefold()
    norm = _SPACE.sub(" ", norm).strip(_EDGE_PUNCT)
    return f"{entity_type}:{norm}"


@dataclass(frozen=True)
class Provenance:
    """Where a node or edge came from; ``seen_at`` is the post's time (UTC ISO)."""

    post_id: str
    seen_at: str
    model_version: str
    confidence: float


@dataclass(frozen=True)
class EntityRow:
    key: str
    type: str
    name: str
    prov: Provenance
    zero_shot: bool = False  # typed by the zero-shot scorer (prov.model_version names it)


@dataclass(frozen=True)
class FactRow:
    head_key: str
    head_type: str
    relation: str
    tail_key: str
    tail_type: str
    prov: Provenance
    zero_shot: bool = False  # labelled by the zero-shot scorer (prov.model_version names it)
    evidence: str = ""  # the post's independence key (evidence_key); "" counts as the post id


@dataclass(frozen=True)
class InferredFact:
    """A fact the completion model predicts; written with ``inferred: true``."""

    head_key: str
    relation: str
    tail_key: str
    score: float
    model_version: str
    inferred_at: str  # UTC ISO time of the completion run


@dataclass(frozen=True)
class PostRow:
    id: str
    created_at: str
    text: str
    author: str | None = None
    source: str | None = None
    mentions: tuple[str, ...] = ()  # entity keys
    model_version: str = ""
    content_hash: str = ""  # of the whole post: a reused id with other content is a conflict
    image: str | None = None  # the post's image reference (path, or sha256 of base64 bytes)


@dataclass
class GraphBatch:
    posts: list[PostRow] = field(default_factory=list)
    entities: list[EntityRow] = field(default_factory=list)
    facts: list[FactRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.posts)


def _merge_prov(rows, with_posts: bool) -> dict:
    provs = [r.prov for r in rows]
    merged = {
        "first_seen": min(p.seen_at for p in provs),
        "last_seen": max(p.seen_at for p in provs),
        "confidence": max(p.confidence for p in provs),
        "model_version": max(provs, key=lambda p: p.seen_at).model_version,
        "model_versions": sorted({p.model_version for p in provs}),
    }
    if with_posts:
        merged["post_ids"] = sorted({p.post_id for p in provs})
    return merged


# Rows are sorted by key: every writer then takes the locks of a batch's nodes
# in one order, so concurrent workers wait for each other instead of deadlocking.

def aggregate_entities(rows: list[EntityRow]) -> dict[str, list[dict]]:
    """Parameter rows per entity type (a label cannot be a parameter), sorted by key."""
    groups: dict[str, dict[str, list[EntityRow]]] = {}
    for row in rows:
        groups.setdefault(row.type, {}).setdefault(row.key, []).append(row)
    return {
        # zero_shot: true only when every mention of the batch is zero-shot; null clears the flag (takeover)
        etype: [{"key": key, "name": by_key[key][0].name, **_merge_prov(by_key[key], False),
                 "zero_shot": True if all(r.zero_shot for r in by_key[key]) else None}
                for key in sorted(by_key)]
        for etype, by_key in sorted(groups.items())
    }


def aggregate_facts(rows: list[FactRow]) -> dict[str, list[dict]]:
    """Parameter rows per relationship type, one per (head, type, tail), sorted by (head, tail).

    Zero-shot and supervised rows are aggregated apart (call it on each kind), as they are written apart.
    """
    groups: dict[str, dict[tuple[str, str], list[FactRow]]] = {}
    for row in rows:
        groups.setdefault(row.relation, {}).setdefault((row.head_key, row.tail_key), []).append(row)
    return {
        rel: [{"head": h, "tail": t, **_merge_prov(by_pair[(h, t)], True), **_evidence(by_pair[(h, t)]),
               "correction": correction_id(h, rel, t)}
              for h, t in sorted(by_pair)]
        for rel, by_pair in sorted(groups.items())
    }


def correction_id(head: str, relation: str, tail: str) -> str:
    """The id of a person's correction of one fact (graph_store.corrections); writes check it."""
    return f"{head}|{relation}|{tail}"


def _evidence(rows: list[FactRow]) -> dict:
    """The batch's independent evidence for one fact: each key once, with its most confident post."""
    best: dict[str, float] = {}
    for row in rows:
        key = row.evidence or f"post:{row.prov.post_id}"
        best[key] = max(best.get(key, 0.0), row.prov.confidence)
    keys = sorted(best)
    return {"evidence": keys, "evidence_conf": [best[k] for k in keys]}
