"""The resolution job: compare entity nodes, link the ones that name one entity.

Run as a batch over the graph (``mkg resolve``, the resolve_entities DAG), not
inside each worker's write: a decision needs the other nodes, their posts and
the text encoder, and a worker that read the graph before every write would
queue the writers on each other. The job is incremental: it compares the
entities no run has compared yet (``resolved_at`` absent) with every entity
that shares a blocking key with them, so an hourly run costs what arrived in
the hour, not the whole graph again (``full`` compares everything).

Blocking keys keep the comparison near-linear: two names are compared only
if they share a word (of their comparable form), or one is an acronym of the
other, or they have the same comparable form under different types. A key
shared by more than ``max_block`` names ("new", "john") says little, and is
skipped rather than squaring its members.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

from mkg_common.clock import utc_iso, utc_stamp

from ..base import GraphStore
from ..schema import ENTITY, MENTIONS, POST, SAME_AS
from .decision import PARTIAL_EVIDENCE, EntityName, Resolver, evidence_kind
from .links import Link, clusters, mark_resolved, write_links
from .names import comparable, initials, looks_like_acronym

log = logging.getLogger(__name__)

_E, _K = ENTITY.label, ENTITY.key[0]
ENTITIES = f"MATCH (e:{_E}) RETURN e.{_K}, e.name, e.type, e.resolved_at IS NULL ORDER BY e.{_K}"
EXISTING_LINKS = (f"UNWIND $keys AS k MATCH (e:{_E} {{{_K}: k}})-[s:{SAME_AS.type}]-(o:{_E}) "
                  f"RETURN e.{_K}, o.{_K}, s.evidence")
CANONICAL_OF = f"UNWIND $keys AS k MATCH (e:{_E} {{{_K}: k}}) RETURN e.{_K}, coalesce(e.canonical, e.{_K})"
CONTEXTS = (f"UNWIND $keys AS k MATCH (e:{_E} {{{_K}: k}}) OPTIONAL MATCH (p:{POST.label})-[:{MENTIONS.type}]->(e) "
            f"WITH e, collect(p.text) AS texts, collect(p.{POST.key[0]}) AS ids RETURN e.{_K}, texts, ids")


@dataclass(frozen=True)
class ResolutionSettings:
    context_posts: int = 2  # post texts that stand for an entity's context (0: names only)
    max_block: int = 200  # a blocking key shared by more names than this is skipped
    full: bool = False  # compare every entity, not only those no run has compared


@dataclass
class ResolutionReport:
    run_id: str
    entities: int  # entity nodes in the graph
    compared: int  # of which this run compared (new ones, or all with ``full``)
    candidate_pairs: int
    merges: int  # pairs decided "one entity" (linked now or before; a pair an unmerge cut stays cut)
    ambiguous: int  # short names (a surname, an acronym) that fit several entities, left unlinked
    nodes_before: int  # entity nodes
    nodes_after: int  # entities once clusters count as one
    clusters: int  # clusters of more than one node
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    key: str
    name: str
    type: str


def blocking_keys(name: str, entity_type: str) -> set[str]:
    """What a name is filed under; names sharing a key are compared."""
    form = comparable(name)
    keys = {f"form:{form}"} if form else set()
    keys |= {f"word:{w}" for w in form.split() if len(w) > 2}
    if looks_like_acronym(name):
        keys.add(f"acronym:{name.replace('.', '').lower()}")
    elif len(initials(name)) > 1:
        keys.add(f"acronym:{initials(name)}")
    return keys


def candidate_pairs(entities: list[Candidate], compare: set[str], max_block: int) -> list[tuple[Candidate, Candidate]]:
    """Pairs that share a blocking key, at least one of them in ``compare``; each pair once, sorted."""
    blocks: dict[str, list[Candidate]] = defaultdict(list)
    for e in entities:
        for k in blocking_keys(e.name, e.type):
            blocks[k].append(e)
    pairs: set[tuple[str, str]] = set()
    by_key = {e.key: e for e in entities}
    for members in blocks.values():
        if len(members) < 2 or len(members) > max_block:
            continue
        for x, y in itertools.combinations(members, 2):
            if x.key != y.key and (x.key in compare or y.key in compare):
                pairs.add(tuple(sorted((x.key, y.key))))
    return [(by_key[a], by_key[b]) for a, b in sorted(pairs)]


def shorter(a: Candidate, b: Candidate) -> Candidate:
    """The name that is the part in a partial match (fewer words, then fewer letters)."""
    return min((a, b), key=lambda c: (len(comparable(c.name).split()), len(comparable(c.name)), c.key))


def unambiguous(links: list[Link], partial: list[tuple[Candidate, Candidate]], existing: list[tuple[str, str, bool]],
                cluster_of: dict[str, str]) -> tuple[list[Link], list[str]]:
    """``links`` without the partial ones of a short name that fits two long names not merged with each other.

    ``partial``: the pairs of ``links`` decided on partial evidence (a surname, an
    acronym); ``existing``: SAME_AS links already in the graph around those short
    names, as (short key, other key, partial); ``cluster_of``: the graph's
    canonical key of the long names. "Trump" linked to "Donald Trump" and
    "Ivanka Trump" would make one entity of two people; "UN" of every
    organisation with those initials. Long names count as one when the graph
    holds them in one cluster or this run links them on full evidence.
    Returns the kept links and the short names left out as ambiguous.
    """
    group = {k: k for k in cluster_of}

    def find(k: str) -> str:
        group.setdefault(k, k)
        while group[k] != k:
            k = group[k]
        return k

    def join(x: str, y: str) -> None:
        rx, ry = find(x), find(y)
        if rx != ry:
            group[max(rx, ry)] = min(rx, ry)

    by_cluster: dict[str, list[str]] = defaultdict(list)
    for k, c in cluster_of.items():
        by_cluster[c].append(k)
    for members in by_cluster.values():
        for other in members[1:]:
            join(members[0], other)
    partial_keys = {tuple(sorted((a.key, b.key))) for a, b in partial}
    for l in links:
        if (l.a, l.b) not in partial_keys:
            join(l.a, l.b)
    fits: dict[str, set[str]] = defaultdict(set)
    for a, b in partial:
        short = shorter(a, b)
        fits[short.key].add(b.key if short is a else a.key)
    for short, other, is_partial in existing:
        if is_partial and short in fits:
            fits[short].add(other)
    ambiguous = sorted(s for s, longs in fits.items() if len({find(k) for k in longs}) > 1)
    drop = {tuple(sorted((a.key, b.key))) for a, b in partial if shorter(a, b).key in set(ambiguous)}
    return [l for l in links if (l.a, l.b) not in drop], ambiguous


def _existing(graph: GraphStore, keys: list[str]) -> list[tuple[str, str, bool]]:
    """SAME_AS links of ``keys`` already in the graph: (key, other key, decided on partial evidence)."""
    if not keys:
        return []
    rows = graph.query(EXISTING_LINKS, {"keys": keys}).rows
    return [(k, other, evidence_kind(evidence or "") in PARTIAL_EVIDENCE) for k, other, evidence in rows]


def _clusters_of(graph: GraphStore, keys: list[str]) -> dict[str, str]:
    """The graph's canonical key of each of ``keys`` (its own key when it was never merged)."""
    if not keys:
        return {}
    return dict(graph.query(CANONICAL_OF, {"keys": keys}).rows)


def _contexts(graph: GraphStore, keys: list[str], posts: int, batch: int = 500) -> dict[str, tuple[str, frozenset]]:
    """key -> (a context of its first ``posts`` post texts, the ids of every post that mentions it)."""
    out = {}
    for i in range(0, len(keys), batch):
        for key, texts, ids in graph.query(CONTEXTS, {"keys": keys[i:i + batch]}).rows:
            context = " ".join(sorted(t for t in texts if t)[:posts]) if posts else ""
            out[key] = (context, frozenset(ids))
    return out


def run_resolution(graph: GraphStore, resolver: Resolver, settings: ResolutionSettings = ResolutionSettings(),
                   run_id: str | None = None) -> ResolutionReport:
    """Compare, decide, link; idempotent (a pair linked before is linked once)."""
    started = time.monotonic()
    run_id = run_id or f"resolve-{utc_stamp()}"
    rows = graph.query(ENTITIES).rows
    entities = [Candidate(k, name or k.split(":", 1)[-1], etype or k.split(":", 1)[0]) for k, name, etype, _ in rows]
    compare = {k for k, _, _, new in rows if new or settings.full}
    pairs = candidate_pairs(entities, compare, settings.max_block)
    by_key = {e.key: e for e in entities}
    in_pairs = sorted({c.key for pair in pairs for c in pair})
    context = _contexts(graph, in_pairs, settings.context_posts)
    names = {k: EntityName(by_key[k].name, by_key[k].type, *context.get(k, ("", frozenset()))) for k in in_pairs}
    decisions = resolver.decide_many([(names[a.key], names[b.key]) for a, b in pairs])
    merged = [(pair, d) for pair, d in zip(pairs, decisions) if d.merge]
    links = [Link.between(a.key, b.key, d.confidence, d.evidence) for (a, b), d in merged]
    partial = [pair for pair, d in merged if d.partial]
    existing = _existing(graph, sorted({shorter(*p).key for p in partial}))
    longs = sorted({k for p in partial for k in (p[0].key, p[1].key)} | {other for _, other, _ in existing})
    links, ambiguous = unambiguous(links, partial, existing, _clusters_of(graph, longs))
    write_links(graph, links, run_id, utc_iso())
    # an ambiguous name is compared again next run: a later merge of the names it fits may settle it
    mark_resolved(graph, sorted(compare - set(ambiguous)), utc_iso())
    grouped = clusters(graph)
    report = ResolutionReport(run_id, len(entities), len(compare), len(pairs), len(links), len(ambiguous),
                              len(entities),
                              len(entities) - sum(len(m) - 1 for m in grouped.values()), len(grouped),
                              round(time.monotonic() - started, 2))
    log.info("entity resolution", extra=report.as_dict())
    return report
