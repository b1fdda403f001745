"""The end-to-end benchmark's gold: reading, checking and merging labelled posts (docs/LABELLING.md).

A labeller writes, per post, the entities (copied text and type) and the facts
between them; this module checks a file against the posts and the guideline's
format, and turns it into :class:`GoldPost` records whose entities carry the
graph keys (``graph_store.records.canonical_key``) the system would write, so
that gold and predictions are compared on what a user would query.

    python -m benchmarks.end_to_end_labels check FILE [--posts POSTS]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from extractors.schema import MNRE_RELATIONS, SYMMETRIC_RELATIONS as SYMMETRIC, implied_types
from graph_store.records import canonical_key

HERE = Path(__file__).resolve().parent / "data" / "end_to_end"
POSTS = HERE / "posts.jsonl"
TYPES = ("PER", "ORG", "LOC", "MISC")


@dataclass(frozen=True)
class GoldFact:
    head: str  # graph key, e.g. "PER:john tory"
    relation: str  # MNRE label
    tail: str

    def canonical(self) -> "GoldFact":
        """Symmetric relations in one order, so either direction is the same fact."""
        if self.relation in SYMMETRIC and self.tail < self.head:
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
    mentions = tuple((name, t, text.index(name), text.index(name) + len(name)) for name, t in types.items())
    return GoldPost(post["id"], text, post.get("split", ""), frozenset(key.values()), facts, mentions)


def load_gold(labels_path: Path, posts_path: Path = POSTS) -> list[GoldPost]:
    """Gold posts of ``labels_path`` (checked; raises ValueError naming every problem)."""
    posts = {p["id"]: p for p in read_jsonl(posts_path)}
    labels = read_jsonl(labels_path)
    bad = check(labels, posts)
    if bad:
        raise ValueError(f"{labels_path}: {len(bad)} problems:\n" + "\n".join(bad[:50]))
    return [gold_post(label, posts[label["id"]]) for label in labels]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check a labels file against the posts and the guideline's format")
    c.add_argument("file", type=Path)
    c.add_argument("--posts", type=Path, default=POSTS)
    args = ap.parse_args(argv)
    posts = {p["id"]: p for p in read_jsonl(args.posts)}
    labels = read_jsonl(args.file)
    bad = check(labels, posts)
    for line in bad:
        print(line)
    print(f"{len(labels)} posts, {sum(len(x.get('facts', [])) for x in labels)} facts, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
