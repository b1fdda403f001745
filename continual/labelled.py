"""Labelled examples gathered from annotated posts: the training data of updates.

A labelling tool publishes posts with gold ``annotations`` (entity spans with
types, relations between them) to their own stream (``posts.labeled``). Each
such post becomes examples in the same form as the research data:

- MRE: one example per ordered pair of annotated entities, labelled with the
  annotated relation or ``None`` (so every task also teaches "no relation");
- MNER: the post's words with BIO tags from the entity spans.

The store is an append-only JSONL file, deduplicated by key, so ingesting the
same post twice (at-least-once delivery) adds nothing. Each example falls in
``train`` or ``val`` by a hash of its post id: stable across runs and
machines, and all examples of one post stay on one side.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Iterable, Sequence

from extractors.datasets import NO_RELATION, OUTSIDE, NERExample, REExample
from extractors.kinds import MNER, MRE, get_kind
from extractors.spans import joined_tokens, word_span, words_with_offsets
from extractors.schema import implied_types

EXAMPLES_FILE = "examples.jsonl"


@dataclass(frozen=True)
class LabelledExample:
    """One stored example; ``data`` holds the task fields (tokens, spans, label or tags)."""

    kind: str  # a name in extractors.kinds
    key: str  # dedup key: post id (+ pair for MRE)
    post_id: str
    seen_at: str  # the post's time (UTC ISO)
    split: str  # "train" or "val"
    data: dict

    def to_example(self) -> REExample | NERExample:
        return get_kind(self.kind).example_from_dict(self.data)

    @property
    def classes(self) -> set[str]:
        """Relations (without ``None``) or entity types this example teaches."""
        return get_kind(self.kind).example_classes(self.to_example())


def split_of(post_id: str, val_fraction: float) -> str:
    h = int(hashlib.sha256(post_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def examples_from_post(post, val_fraction: float = 0.2) -> list[LabelledExample]:
    """MRE and MNER examples of one annotated :class:`pipeline.post.Post`."""
    ann = post.annotations
    if ann is None or not ann.entities:
        return []
    words = words_with_offsets(post.text)
    tokens = [w for w, _, _ in words]
    spans: dict[str, tuple[int, int, str]] = {}
    for ent in ann.entities:
        if (span := word_span(words, ent.start, ent.end)) is not None:
            spans[ent.id] = (*span, ent.type)
    seen, split = post.created_at_iso, split_of(post.id, val_fraction)
    image_id = post.image.path or "" if post.image is not None else ""
    tags = [OUTSIDE] * len(tokens)
    for start, end, etype in sorted(spans.values()):
        if all(t == OUTSIDE for t in tags[start:end]):  # overlapping spans: the first one wins
            tags[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    out = [LabelledExample(MNER.name, post.id, post.id, seen, split,
                           {"tokens": tokens, "tags": tags, "image_id": image_id})]
    relations = {(r.head, r.tail): r.type for r in ann.relations}
    for h, t in permutations(sorted(spans), 2):
        hs, ts = spans[h], spans[t]
        label = relations.get((h, t), NO_RELATION)
        out.append(LabelledExample(MRE.name, f"{post.id}|{h}|{t}", post.id, seen, split,
                                   {"tokens": tokens, "head": hs[:2], "tail": ts[:2], "relation": label,
                                    "head_type": hs[2], "tail_type": ts[2], "image_id": image_id}))
    return out


def post_from_re_example(ex: REExample, post_id: str, created_at: str, labelled: bool = True,
                         default_type: str = "MISC") -> dict:
    """A wire post for a research-data MRE example (IMRE/MNRE): text, entity spans, relation.

    Entity types come from the relation's implied types (``/per/org/...``);
    ``None`` examples get ``default_type``. ``labelled=False`` keeps the entity
    spans (as an upstream tagger would give them) but drops the relation.
    """
    text, offsets = joined_tokens(ex.tokens)
    types = implied_types(ex.relation) or (default_type, default_type)
    ents = [{"id": role, "start": offsets[span[0]][0], "end": offsets[span[1] - 1][1], "type": etype}
            for role, span, etype in (("h", ex.head, types[0]), ("t", ex.tail, types[1]))]
    rels = [{"head": "h", "tail": "t", "type": ex.relation}] if labelled and ex.relation != NO_RELATION else []
    post = {"id": post_id, "text": text, "created_at": created_at, "source": "labelled" if labelled else "stream",
            "annotations": {"entities": ents, "relations": rels}}
    if ex.head == ex.tail or ents[0]["start"] < ents[1]["end"] and ents[1]["start"] < ents[0]["end"]:
        post["annotations"] = {"entities": ents[:1], "relations": []}  # overlapping spans: keep the head only
    return post


class LabelledStore:
    """Append-only, deduplicated labelled examples under one folder."""

    def __init__(self, root: str | Path, val_fraction: float = 0.2) -> None:
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.path = self.root / EXAMPLES_FILE
        self._examples: dict[str, LabelledExample] | None = None

    def _load(self) -> dict[str, LabelledExample]:
        if self._examples is None:
            self._examples = {}
            if self.path.exists():
                with self.path.open(encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            d = json.loads(line)
                            self._examples[f"{d['kind']}:{d['key']}"] = LabelledExample(**d)
        return self._examples

    def add(self, examples: Iterable[LabelledExample]) -> int:
        """Append the examples not stored yet (by kind and key); returns how many were new."""
        known = self._load()
        new = [ex for ex in examples if f"{ex.kind}:{ex.key}" not in known]
        fresh: dict[str, LabelledExample] = {}
        for ex in new:
            fresh.setdefault(f"{ex.kind}:{ex.key}", ex)
        if not fresh:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for ex in fresh.values():
                fh.write(json.dumps(ex.__dict__, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        known.update(fresh)
        return len(fresh)

    def all(self, kind: str) -> list[LabelledExample]:
        return [ex for ex in self._load().values() if ex.kind == kind]

    def examples(self, kind: str, split: str, classes: Sequence[str] | None = None,
                 with_none_from: Sequence[str] | None = None) -> list:
        """Task examples (``REExample``/``NERExample``) of ``split``.

        ``classes``: only examples teaching one of them; for MRE,
        ``with_none_from`` adds the ``None`` pairs of posts that carry one of
        those classes (the negatives a task trains on beside its relations).
        """
        rows = [ex for ex in self.all(kind) if ex.split == split]
        if classes is None:
            return [ex.to_example() for ex in rows]
        keep = set(classes)
        picked = [ex for ex in rows if ex.classes & keep]
        if get_kind(kind).no_label_examples and with_none_from:
            posts = {ex.post_id for ex in rows if ex.classes & set(with_none_from)}
            picked += [ex for ex in rows if not ex.classes and ex.post_id in posts]
        return [ex.to_example() for ex in picked]

    def class_counts(self, kind: str) -> Counter:
        """Examples per class (relations without ``None``, or entity types), all splits."""
        return Counter(c for ex in self.all(kind) for c in ex.classes)

    def first_seen(self, kind: str) -> dict[str, str]:
        """When each class first appeared (the earliest post time carrying it)."""
        out: dict[str, str] = {}
        for ex in self.all(kind):
            for c in ex.classes:
                if c not in out or ex.seen_at < out[c]:
                    out[c] = ex.seen_at
        return out
