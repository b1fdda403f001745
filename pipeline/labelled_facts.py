"""Posts labelled by docs/LABELLING.md: reading, checking, and scoring the facts a graph holds.

A labeller writes, per post, the entities (copied text and type) and the facts
between them. Here a labels file is checked against its posts and the
guideline's format and turned into :class:`GoldPost` records whose entities
carry the graph keys (``graph_store.records.canonical_key``) the system would
write, so gold and the graph are compared on what a Cypher user matches on.
``mkg demo`` scores its own graph against the sample stream's gold with
:func:`score_graph_facts`; ``benchmarks.end_to_end`` scores every post.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from extractors.schema import MNRE_RELATIONS, SYMMETRIC_RELATIONS as SYMMETRIC, implied_types, one_way, relation_type_of
from extractors.spans import find_name
from graph_store.records import canonical_key

TYPES = ("PER", "ORG", "LOC", "MISC")
SAMPLE_GOLD = Path(__file__).parent / "data" / "sample_gold.jsonl"  # the bundled sample stream, hand-labelled


@dataclass(frozen=True)
class GoldFact:
    head: str  # graph key, e.g. "PER:john tory"
    relation: str  # MNRE label
    tail: str

    def canonical(self) -> "GoldFact":
        """Symmetric relations in one order, so either direction is the same fact."""
        if one_way(self.head, self.relation, self.tail):
            return GoldFact(self.tail, self.relation, self.head)
        return self


@dataclass(frozen=True)
class GoldPost:
    id: str
    text: str
    split: str
    entities: frozenset[str]  # graph keys
    facts: frozenset[GoldFact]  # canonical
    mentions: tuple[tuple[str, str, int, int], ...] = ()  # (text, type, start, end): first occurrence

    def label_of(self, head: str, tail: str) -> str:
        """The gold relation from graph key ``head`` to ``tail`` (either order for a symmetric one), or "None"."""
        for f in self.facts:
            if (f.head, f.tail) == (head, tail) or (f.relation in SYMMETRIC and (f.tail, f.head) == (head, tail)):
                return f.relation
        return "None"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_posts(path: Path) -> list[dict]:
    """The posts of a stream file that have an id and a text (a stream may hold malformed lines)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            post = json.loads(line)
        except ValueError:
            continue
        if isinstance(post, dict) and isinstance(post.get("id"), str) and isinstance(post.get("text"), str):
            out.append(post)
    return out


def problems(label: dict, text: str) -> list[str]:
    """What is wrong with one post's label, by the guideline; empty when nothing is."""
    out = []
    names = {}
    for ent in label.get("entities", []):
        name, etype = ent.get("text", ""), ent.get("type")
        if etype not in TYPES:
            out.append(f"entity {name!r}: type {etype!r} is not one of {TYPES}")
        if not name or name not in text:
            out.append(f"entity {name!r} is not in the post's text")
        names[name] = etype
    for fact in label.get("facts", []):
        rel, head, tail = fact.get("relation"), fact.get("head"), fact.get("tail")
        if rel not in MNRE_RELATIONS:
            out.append(f"fact {fact}: relation {rel!r} is not in the schema")
            continue
        if head not in names or tail not in names:
            out.append(f"fact {fact}: head and tail must be listed entities")
            continue
        want = implied_types(rel)
        if (names[head], names[tail]) != want:
            out.append(f"fact {fact}: {rel} needs {want[0]} -> {want[1]}, got {names[head]} -> {names[tail]}")
        if head == tail:
            out.append(f"fact {fact}: head and tail are the same entity")
    return out


def check(labels: list[dict], posts: dict[str, dict]) -> list[str]:
    out = []
    for label in labels:
        if label.get("id") not in posts:
            out.append(f"{label.get('id')}: not a post of the set")
            continue
        out += [f"{label['id']}: {p}" for p in problems(label, posts[label["id"]]["text"])]
    return out


def gold_post(label: dict, post: dict) -> GoldPost:
    types = {e["text"]: e["type"] for e in label["entities"]}
    key = {name: canonical_key(t, name) for name, t in types.items()}
    facts = frozenset(GoldFact(key[f["head"]], f["relation"], key[f["tail"]]).canonical()
                      for f in label["facts"] if key[f["head"]] != key[f["tail"]])
    text = post["text"]
    mentions = tuple((name, t, find_name(text, name), find_name(text, name) + len(name)) for name, t in types.items())
    return GoldPost(post["id"], text, post.get("split", ""), frozenset(key.values()), facts, mentions)


def load_gold(labels_path: Path, posts_path: Path) -> list[GoldPost]:
    """Gold posts of ``labels_path`` (checked; raises ValueError naming every problem)."""
    posts = {p["id"]: p for p in read_posts(posts_path)}
    labels = read_jsonl(labels_path)
    bad = check(labels, posts)
    if bad:
        raise ValueError(f"{labels_path}: {len(bad)} problems:\n" + "\n".join(bad[:50]))
    return [gold_post(label, posts[label["id"]]) for label in labels]


def graph_triples(post: GoldPost) -> set[tuple[str, str, str]]:
    """A post's gold facts as the graph writes them: (head key, relationship type, tail key)."""
    return {(f.head, relation_type_of(f.relation), f.tail) for f in post.facts}


def score_graph_facts(rows: Iterable[tuple[str, str, str, Iterable[str]]], gold: Iterable[GoldPost]) -> dict:
    """Precision and recall of a graph's extracted facts, ``(head key, type, tail key, post ids)``:
    a fact is right when a post it came from states it (symmetric ones in either order); recall is over
    the gold facts of all posts, each distinct fact once."""
    def canon(h: str, r: str, t: str) -> tuple[str, str, str]:
        return (t, r, h) if one_way(h, r, t) else (h, r, t)

    by_post = {g.id: {canon(*f) for f in graph_triples(g)} for g in gold}
    every = set().union(*by_post.values()) if by_post else set()
    written = right = 0
    found = set()
    for head, rel, tail, post_ids in rows:
        fact = canon(head, rel, tail)
        written += 1
        if any(fact in by_post.get(p, ()) for p in post_ids):
            right += 1
            found.add(fact)
    return {"precision": round(right / written, 4) if written else 0.0,
            "recall": round(len(found) / len(every), 4) if every else 0.0,
            "written": written, "right": right, "gold": len(every)}
