"""Entity resolution on the embedded graph and real Neo4j: merges are SAME_AS links with a canonical
key per cluster, idempotent, undone by an unmerge that sticks, and correct when two resolvers run while
two workers write."""
from __future__ import annotations

import threading
from collections import Counter

import pytest

from graph_store.embedded import EmbeddedGraphStore
from graph_store.records import EntityRow, FactRow, GraphBatch, PostRow, Provenance, canonical_key
from graph_store.resolution import links
from graph_store.resolution.decision import Resolver as _Resolver, ResolverConfig
from graph_store.resolution.job import ResolutionSettings, run_resolution

pytestmark = pytest.mark.integration

NAMES_ONLY = ResolutionSettings(context_posts=0)


def Resolver(embed=None):
    """Names alone decide (no encoder here, so no contexts for weak evidence to need)."""
    return _Resolver(embed, ResolverConfig(weak_context_min=None))
PEOPLE = [("Donald", "Trump"), ("Ivanka", "Trump"), ("Barack", "Obama"), ("Angela", "Merkel"), ("Emmanuel", "Macron"),
          ("Jacinda", "Ardern"), ("Olaf", "Scholz"), ("Justin", "Trudeau")]
ORGS = ["United Nations", "UN", "World Health Organization", "WHO", "European Union", "EU"]
SAME_AS_ROWS = "MATCH (a:Entity)-[s:SAME_AS]->(b:Entity) RETURN a.key, b.key"
FACTS_AND_MENTIONS = "MATCH ()-[r]->() WHERE type(r) <> 'SAME_AS' AND type(r) <> 'NOT_SAME_AS' RETURN count(r)"


def person_names(first: str, last: str) -> list[str]:
    return [f"{first} {last}", f"@{first}{last}", last]


def post(i: int, names: list[tuple[str, str]]) -> GraphBatch:
    """One post mentioning ``names`` ((type, name)), with a CO_MENTIONED fact between the first two."""
    prov = Provenance(f"p{i}", f"2026-03-01T00:00:{i % 60:02d}.000000Z", "test@1", 0.9)
    keys = [canonical_key(t, n) for t, n in names]
    entities = [EntityRow(k, t, n, prov) for k, (t, n) in zip(keys, names)]
    facts = [FactRow(keys[0], names[0][0], "CO_MENTIONED", keys[1], names[1][0], prov)] if len(keys) > 1 else []
    return GraphBatch(posts=[PostRow(f"p{i}", prov.seen_at, " and ".join(n for _, n in names), mentions=tuple(keys))],
                      entities=entities, facts=facts)


def stream(worker: int, n: int) -> list[GraphBatch]:
    """Posts of one worker: people under their full name, handle or surname, organisations and acronyms."""
    names = [("PER", v) for first, last in PEOPLE for v in person_names(first, last)] + [("ORG", o) for o in ORGS]
    return [post(worker * 10_000 + i, [names[(worker * 7 + i) % len(names)], names[(worker * 3 + 2 * i + 1) % len(names)]])
            for i in range(n)]


def components(pairs: list[list[str]]) -> dict[str, str]:
    """key -> smallest key of its SAME_AS component, computed here from the edges alone."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {k: find(k) for k in parent}


def assert_canonical_matches_links(graph) -> None:
    pairs = graph.query(SAME_AS_ROWS).rows
    assert all(a < b for a, b in pairs)  # one direction, so two resolvers MERGE the same edge
    assert max(Counter(map(tuple, pairs)).values(), default=1) == 1, "a SAME_AS link was written twice"
    expected = components(pairs)
    stored = dict(graph.query("MATCH (e:Entity) WHERE e.canonical IS NOT NULL RETURN e.key, e.canonical").rows)
    assert {k: stored.get(k) for k in expected} == expected


def another_connection(graph, request):
    if isinstance(graph, EmbeddedGraphStore):
        return EmbeddedGraphStore(graph.data_dir)
    from graph_store.neo4j_backend import Neo4jGraphStore

    from conftest import neo4j_password

    return Neo4jGraphStore(request.getfixturevalue("services").services["neo4j"].address, "neo4j", neo4j_password())


def test_resolution_links_clusters_and_is_idempotent(graph_store):
    for batch in stream(0, 40):
        graph_store.write(batch)
    (facts_before,) = graph_store.query(FACTS_AND_MENTIONS).rows[0]
    first = run_resolution(graph_store, Resolver(None), NAMES_ONLY)
    assert first.compared == first.entities > 0 and first.merges > 0
    clusters = links.clusters(graph_store)
    assert clusters["PER:barack obama"] == ["PER:barack obama", "PER:barackobama", "PER:obama"]
    assert clusters["ORG:un"] == ["ORG:un", "ORG:united nations"]
    # "Trump" fits two people who are not one: linked to neither (Donald keeps his handle)
    assert "PER:trump" not in {k for members in clusters.values() for k in members}
    assert clusters["PER:donald trump"] == ["PER:donald trump", "PER:donaldtrump"]
    assert first.ambiguous == 1 and first.nodes_after == first.nodes_before - sum(len(m) - 1 for m in clusters.values())
    assert_canonical_matches_links(graph_store)
    evidence = dict(((a, b), e) for a, b, e in graph_store.query(
        "MATCH (a:Entity)-[s:SAME_AS]->(b:Entity) RETURN a.key, b.key, s.evidence").rows)
    assert evidence[("ORG:un", "ORG:united nations")] == "acronym"
    # nodes and facts are never moved or rewritten
    assert graph_store.query(FACTS_AND_MENTIONS).rows[0][0] == facts_before

    # nothing new: only the ambiguous name is compared again (a later merge of the names it fits may settle it)
    again = run_resolution(graph_store, Resolver(None), NAMES_ONLY)
    assert (again.compared, again.ambiguous, again.merges) == (1, 1, 0)
    full = run_resolution(graph_store, Resolver(None), ResolutionSettings(context_posts=0, full=True))
    assert full.merges == first.merges and links.clusters(graph_store) == clusters
    assert len(graph_store.query(SAME_AS_ROWS).rows) == first.merges


def _written(i: int, text: str, names: list[tuple[str, str]]) -> GraphBatch:
    """A post with its own text (the context resolution reads) mentioning ``names``."""
    batch = post(i, names)
    batch.posts[0] = PostRow(batch.posts[0].id, batch.posts[0].created_at, text, mentions=batch.posts[0].mentions)
    return batch


def test_with_the_shipped_defaults_a_surname_merges_on_a_shared_post_and_not_across_people(graph_store):
    """The production job (``pipeline.jobs.resolution.resolve``) with ``Config()``: the real text encoder,
    post texts as contexts, and the context gate on weak evidence. Who is who was decided by reading
    the posts: the "Obama" of p2 is the Barack Obama it is mentioned with, @BarackObama is his handle;
    the "Jordan" who captains Liverpool is not Michael Jordan of the Chicago Bulls."""
    from pipeline.config import Config
    from pipeline.jobs.resolution import resolve

    posts = [
        _written(1, "Barack Obama (@BarackObama) speaks at the Democratic convention tonight",
                 [("PER", "Barack Obama"), ("PER", "@BarackObama")]),
        _written(2, "Barack Obama meets Merkel in Berlin; Obama praises the alliance",
                 [("PER", "Obama"), ("PER", "Barack Obama"), ("PER", "Merkel")]),
        _written(3, "Jordan Henderson lifts the trophy: Jordan captained Liverpool to the Champions League title",
                 [("PER", "Jordan"), ("ORG", "Liverpool")]),
        _written(4, "Michael Jordan won six NBA championships with the Chicago Bulls",
                 [("PER", "Michael Jordan"), ("ORG", "Chicago Bulls")]),
    ]
    for batch in posts:
        graph_store.write(batch)
    report = resolve(Config(), graph_store)
    clusters = links.clusters(graph_store)
    assert clusters["PER:barack obama"] == ["PER:barack obama", "PER:barackobama", "PER:obama"]
    assert "PER:jordan" not in {k for members in clusters.values() for k in members}
    assert "PER:merkel" not in {k for members in clusters.values() for k in members}
    assert report.merges == 2
    evidence = dict(((a, b), e) for a, b, e in graph_store.query(
        "MATCH (a:Entity)-[s:SAME_AS]->(b:Entity) RETURN a.key, b.key, s.evidence").rows)
    assert evidence[("PER:barack obama", "PER:obama")].endswith("mentioned in one post")


def test_unmerge_cuts_for_good_and_the_rest_of_the_cluster_keeps_its_links(graph_store):
    for batch in stream(0, 40):
        graph_store.write(batch)
    run_resolution(graph_store, Resolver(None), NAMES_ONLY)
    assert links.clusters(graph_store)["PER:barack obama"] == ["PER:barack obama", "PER:barackobama", "PER:obama"]
    out = links.unmerge(graph_store, "PER:barack obama", "test: not the same", "2026-03-02T00:00:00Z")
    assert out["cut"] == ["PER:barackobama", "PER:obama"] and out["former_cluster"] == "PER:barack obama"
    clusters = links.clusters(graph_store)
    # the handle and the surname still match each other, so they stay one cluster, under a new canonical key
    assert clusters["PER:barackobama"] == ["PER:barackobama", "PER:obama"]
    assert graph_store.query("MATCH (e:Entity {key: 'PER:barack obama'}) RETURN e.canonical").rows == [[None]]
    assert_canonical_matches_links(graph_store)
    cut = graph_store.query("MATCH (a:Entity)-[c:NOT_SAME_AS]->(b:Entity) RETURN a.key, b.key, c.reason, c.was").rows
    assert sorted(map(tuple, cut)) == [("PER:barack obama", "PER:barackobama", "test: not the same", "same comparable form"),
                                       ("PER:barack obama", "PER:obama", "test: not the same", "given name or surname of")]
    # resolution decides the pair again, but never links what an unmerge cut
    run_resolution(graph_store, Resolver(None), ResolutionSettings(context_posts=0, full=True))
    assert links.clusters(graph_store) == clusters
    assert links.unmerge(graph_store, "PER:barack obama", "again", "2026-03-03T00:00:00Z")["cut"] == []
    with pytest.raises(KeyError):
        links.unmerge(graph_store, "PER:nobody", "no such entity", "2026-03-03T00:00:00Z")


def test_two_resolvers_while_two_workers_write_end_with_the_clusters_of_one(graph_store, request):
    """Workers MERGE nodes by key and never read canonical keys; resolvers only add links and lower
    canonical keys, so running them all at once must end where a single resolver would."""
    streams = [stream(w, 60) for w in (1, 2)]
    stores = [another_connection(graph_store, request) for _ in range(4)]
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def worker(store, batches):
        try:
            for batch in batches:
                store.write(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def resolver(store):
        try:
            while writing.is_set():
                run_resolution(store, Resolver(None), NAMES_ONLY)
            run_resolution(store, Resolver(None), NAMES_ONLY)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(stores[i], streams[i])) for i in range(2)]
    resolvers = [threading.Thread(target=resolver, args=(stores[2 + i],)) for i in range(2)]
    try:
        for t in resolvers + workers:
            t.start()
        for t in workers:
            t.join(timeout=300)
        writing.clear()
        for t in resolvers:
            t.join(timeout=300)
    finally:
        for store in stores:
            store.close()
    assert not errors, errors
    ids = {r[0] for r in graph_store.query("MATCH (p:Post) RETURN p.id").rows}
    assert ids == {f"p{w * 10_000 + i}" for w in (1, 2) for i in range(60)}
    assert_canonical_matches_links(graph_store)
    concurrent = links.clusters(graph_store)
    assert concurrent  # something was merged
    # one more resolver over everything, alone, finds nothing to change
    run_resolution(graph_store, Resolver(None), ResolutionSettings(context_posts=0, full=True))
    assert links.clusters(graph_store) == concurrent
    assert_canonical_matches_links(graph_store)
