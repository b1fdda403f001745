"""What the console reads from the graph: fixed, parameterised Cypher that runs on both backends.

Nothing a visitor types reaches a query as text: names, keys and relation types
travel as parameters (``type(r) = $rel``), so a URL can ask for any edge without
a label ever being spliced into Cypher. Every query is also shown to the user
(the "Cypher" link of a page), so it must stand on its own.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from graph_store.base import GraphStore
from graph_store.schema import INFERRED, MENTIONS, NOT_SAME_AS, SAME_AS, ZERO_SHOT

SEARCH = ("MATCH (e:Entity) WHERE toLower(e.name) CONTAINS toLower($q) OR toLower(e.key) CONTAINS toLower($q) "
          "OPTIONAL MATCH (p:Post)-[:MENTIONS]->(e) "
          "RETURN e.key, e.name, e.type, e.canonical, count(p) AS posts ORDER BY posts DESC, e.key LIMIT $limit")
ENTITY = ("MATCH (e:Entity {key: $key}) "
          f"RETURN e.key, e.name, e.type, e.canonical, e.first_seen, e.last_seen, e.model_versions, e.{ZERO_SHOT}")
_EDGE_FIELDS = (f"type(r), r.{INFERRED}, r.{ZERO_SHOT}, r.confidence, r.score, r.model_version, r.model_versions, "
                "r.post_ids, r.first_seen, r.last_seen, r.belief")
_NOT_FACTS = f"NOT type(r) IN ['{SAME_AS.type}', '{NOT_SAME_AS.type}', '{MENTIONS.type}']"
OUT_EDGES = (f"MATCH (e:Entity {{key: $key}})-[r]->(o:Entity) WHERE {_NOT_FACTS} "
             f"RETURN o.key, o.name, o.type, {_EDGE_FIELDS} ORDER BY type(r), o.key LIMIT $limit")
IN_EDGES = (f"MATCH (o:Entity)-[r]->(e:Entity {{key: $key}}) WHERE {_NOT_FACTS} "
            f"RETURN o.key, o.name, o.type, {_EDGE_FIELDS} ORDER BY type(r), o.key LIMIT $limit")
SAME = (f"MATCH (e:Entity {{key: $key}})-[r:{SAME_AS.type}]-(o:Entity) "
        "RETURN o.key, o.name, r.confidence, r.evidence ORDER BY o.key")
EDGE = (f"MATCH (h:Entity {{key: $head}})-[r]->(t:Entity {{key: $tail}}) WHERE type(r) = $rel "
        f"RETURN h.name, t.name, {_EDGE_FIELDS}")
POSTS = ("MATCH (p:Post) WHERE p.id IN $ids "
         "RETURN p.id, p.text, p.created_at, p.author, p.source, p.image ORDER BY p.created_at, p.id")
POST_MENTIONS = "MATCH (p:Post {id: $id})-[m:MENTIONS]->(e:Entity) RETURN e.key, e.name, e.type, m.model_version ORDER BY e.key"


@dataclass(frozen=True)
class Edge:
    """One fact edge as a page shows it, seen from an entity (``outgoing``: the entity is the head)."""

    relation: str
    other_key: str
    other_name: str
    other_type: str
    outgoing: bool
    inferred: bool
    zero_shot: bool
    confidence: float | None
    score: float | None
    model_version: str | None
    model_versions: list[str]
    post_ids: list[str]
    first_seen: str | None
    last_seen: str | None
    belief: float | None = None  # extracted: the noisy-or of its independent posts' confidences

    @property
    def style(self) -> str:
        """inferred (completion), zero-shot (a confirmed class no model learned yet) or extracted."""
        return "inferred" if self.inferred else "zero-shot" if self.zero_shot else "extracted"

    @property
    def strength(self) -> float | None:
        return self.score if self.inferred else self.confidence


@dataclass
class EntityView:
    key: str
    name: str
    type: str
    canonical: str | None
    first_seen: str | None
    last_seen: str | None
    model_versions: list[str]
    zero_shot: bool = False  # typed by the zero-shot scorer only (a type no tagger has learnt yet)
    edges: list[Edge] = field(default_factory=list)
    same_as: list[tuple[str, str, float | None, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class PostView:
    id: str
    text: str
    created_at: str | None
    author: str | None
    source: str | None
    image: str | None


def _edge(row: list, outgoing: bool) -> Edge:
    (okey, oname, otype, rel, inferred, zero_shot, conf, score, version, versions, post_ids, first, last, belief) = row
    return Edge(rel, okey, oname or okey, otype or "", outgoing, bool(inferred), bool(zero_shot), conf, score, version,
                list(versions or []), list(post_ids or []), first, last, belief)


class GraphReader:
    """The console's reads, one at a time: the embedded backend's client is not shared across
    threads, and a console is read by a handful of people."""

    def __init__(self, graph: GraphStore) -> None:
        self.graph = graph
        self._lock = threading.Lock()

    def rows(self, cypher: str, params: dict | None = None) -> list[list]:
        with self._lock:
            return self.graph.query(cypher, params or {}).rows

    def call(self, fn, *args, **kwargs):
        """``fn(graph, *args, **kwargs)`` under the lock: the review code takes the graph itself."""
        with self._lock:
            return fn(self.graph, *args, **kwargs)

    def search(self, q: str, limit: int) -> list[dict]:
        return [{"key": k, "name": n or k, "type": t or "", "canonical": c, "posts": p}
                for k, n, t, c, p in self.rows(SEARCH, {"q": q, "limit": limit})]

    def entity(self, key: str, limit: int) -> EntityView | None:
        found = self.rows(ENTITY, {"key": key})
        if not found:
            return None
        k, name, etype, canonical, first, last, versions, zero_shot = found[0]
        view = EntityView(k, name or k, etype or "", canonical, first, last, list(versions or []), bool(zero_shot))
        view.edges = ([_edge(r, True) for r in self.rows(OUT_EDGES, {"key": key, "limit": limit})]
                      + [_edge(r, False) for r in self.rows(IN_EDGES, {"key": key, "limit": limit})])
        view.same_as = [tuple(r) for r in self.rows(SAME, {"key": key})]
        return view

    def edge(self, head: str, rel: str, tail: str) -> tuple[str, str, list[Edge]] | None:
        rows = self.rows(EDGE, {"head": head, "rel": rel, "tail": tail})
        if not rows:
            return None
        edges = [_edge([tail, r[1], "", *r[2:]], True) for r in rows]
        return rows[0][0] or head, rows[0][1] or tail, edges

    def posts(self, ids: list[str]) -> list[PostView]:
        if not ids:
            return []
        return [PostView(i, t or "", c, a, s, img) for i, t, c, a, s, img in self.rows(POSTS, {"ids": list(ids)})]

    def post(self, post_id: str) -> tuple[PostView, list[list]] | None:
        found = self.posts([post_id])
        if not found:
            return None
        return found[0], self.rows(POST_MENTIONS, {"id": post_id})
