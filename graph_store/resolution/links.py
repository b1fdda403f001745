"""Merges in the graph: ``SAME_AS`` links between entity nodes, a ``canonical`` key per cluster.

Why links, not one merged node. Every worker writes an entity by MERGE on
its key (``PER:donald trump``), with no read before the write and no lock
shared between workers. Folding "@realDonaldTrump" into "Donald Trump" by
moving its edges would fight that: the next post naming "@realDonaldTrump"
MERGEs the node back, and an undo would have to know which edges moved. So
nodes stay what the extractors wrote, and a merge is a link:

- ``(a)-[:SAME_AS {confidence, evidence, decided_at, run_id}]->(b)``, always
  from the smaller key to the larger, so two resolvers MERGE the same edge;
- every node of a cluster (the connected component of SAME_AS) carries
  ``canonical``: the smallest key in it. A node never merged has none, so
  ``coalesce(n.canonical, n.key)`` is "the entity" in any query;
- an unmerge turns the node's links into ``NOT_SAME_AS`` (kept with who cut
  them and when), which later runs never link again, and gives the cluster
  it left back its own canonical keys.

``canonical`` is kept by lowering: a pass sets each linked node to the
smallest canonical among its neighbours, and passes repeat until one changes
nothing. Lowering commutes, so resolvers running at the same time (or a
resolver and an unmerge) still end where one alone would: each one's last
pass changed nothing after every write it made, and a write by another is
followed by that one's own passes. Workers never touch these properties.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..base import GraphStore
from ..schema import ENTITY, NOT_SAME_AS, SAME_AS

_E, _K = ENTITY.label, ENTITY.key[0]
MAX_PASSES = 64  # a chain of n links needs about log2(n)..n passes; clusters are small

# a decided link; a pair someone cut (NOT_SAME_AS) is skipped, a link that exists is left as it was
LINK = (
    f"UNWIND $rows AS r MATCH (a:{_E} {{{_K}: r.a}}) MATCH (b:{_E} {{{_K}: r.b}}) "
    f"OPTIONAL MATCH (a)-[cut:{NOT_SAME_AS.type}]-(b) WITH a, b, r, cut WHERE cut IS NULL "
    f"MERGE (a)-[s:{SAME_AS.type}]->(b) "
    "ON CREATE SET s.confidence = r.confidence, s.evidence = r.evidence, s.decided_at = r.decided_at, "
    "s.run_id = r.run_id "
    "SET a.canonical = coalesce(a.canonical, a.key), b.canonical = coalesce(b.canonical, b.key)"
)
LOWER = (
    f"MATCH (a:{_E})-[:{SAME_AS.type}]-(b:{_E}) WHERE b.canonical < a.canonical "
    "WITH a, min(b.canonical) AS lowest SET a.canonical = lowest RETURN count(a)"
)
MARK_RESOLVED = f"UNWIND $keys AS k MATCH (e:{_E} {{{_K}: k}}) SET e.resolved_at = $at"
CLUSTER_OF = f"MATCH (e:{_E} {{{_K}: $key}}) RETURN e.canonical"
LINKS_OF = f"MATCH (e:{_E} {{{_K}: $key}})-[s:{SAME_AS.type}]-(o:{_E}) RETURN o.{_K}, s.evidence"
CUT = (f"MATCH (e:{_E} {{{_K}: $key}})-[s:{SAME_AS.type}]-(o:{_E}) "
       f"MERGE (e)-[c:{NOT_SAME_AS.type}]->(o) SET c.reason = $reason, c.cut_at = $at, c.was = s.evidence DELETE s")
RESET_CLUSTER = f"MATCH (e:{_E} {{canonical: $cluster}}) SET e.canonical = e.{_K}"
FORGET_CANONICAL = f"MATCH (e:{_E} {{{_K}: $key}}) REMOVE e.canonical"
MEMBERS = f"MATCH (e:{_E}) WHERE e.canonical IS NOT NULL RETURN e.{_K}, e.canonical ORDER BY e.{_K}"


@dataclass(frozen=True)
class Link:
    """A merge decision to write: ``a`` < ``b`` (keys), with its confidence and evidence."""

    a: str
    b: str
    confidence: float
    evidence: str

    @staticmethod
    def between(key1: str, key2: str, confidence: float, evidence: str) -> "Link":
        a, b = sorted((key1, key2))
        return Link(a, b, float(confidence), evidence)


def write_links(graph: GraphStore, links: list[Link], run_id: str, decided_at: str, batch: int = 500) -> None:
    """MERGE the links (idempotent) and settle every cluster's canonical key."""
    for i in range(0, len(links), batch):
        rows = [{"a": l.a, "b": l.b, "confidence": l.confidence, "evidence": l.evidence,
                 "decided_at": decided_at, "run_id": run_id} for l in links[i:i + batch]]
        graph.execute([(LINK, {"rows": rows})])
    settle(graph)


def settle(graph: GraphStore) -> int:
    """Lower canonical keys until no pass changes one; returns the passes it took."""
    for passes in range(1, MAX_PASSES + 1):
        (changed,) = graph.query(LOWER).rows[0]
        if not changed:
            return passes
    raise RuntimeError(f"canonical keys still changing after {MAX_PASSES} passes")


def mark_resolved(graph: GraphStore, keys: list[str], at: str, batch: int = 2000) -> None:
    """Entities a run has compared: the next incremental run compares only newer ones against them."""
    for i in range(0, len(keys), batch):
        graph.execute([(MARK_RESOLVED, {"keys": keys[i:i + batch], "at": at})])


def unmerge(graph: GraphStore, key: str, reason: str, at: str) -> dict:
    """Take ``key`` out of its cluster: its SAME_AS links become NOT_SAME_AS (never linked again),
    the rest of the cluster gets canonical keys from its remaining links. Idempotent."""
    found = graph.query(CLUSTER_OF, {"key": key}).rows
    if not found:
        raise KeyError(f"no entity with key {key!r}")
    cluster = found[0][0]
    cut = graph.query(LINKS_OF, {"key": key}).rows
    graph.execute([(CUT, {"key": key, "reason": reason, "at": at})])
    if cluster is not None:  # everyone in the old cluster starts again from their own key
        graph.execute([(RESET_CLUSTER, {"cluster": cluster})])
    graph.execute([(FORGET_CANONICAL, {"key": key})])
    settle(graph)
    return {"key": key, "cut": sorted(k for k, _ in cut), "former_cluster": cluster}


def clusters(graph: GraphStore) -> dict[str, list[str]]:
    """Canonical key -> its members' keys, for every cluster of more than one node."""
    out: dict[str, list[str]] = {}
    for key, canonical in graph.query(MEMBERS).rows:
        out.setdefault(canonical, []).append(key)
    return {c: members for c, members in out.items() if len(members) > 1}
