"""Novelty candidates end to end: real tweets, the real MiniLM, both graph backends, the worker hook."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import torch
from helpers import SHARED_DATA, unavailable, write_jsonl

from continual.candidates.discovery import discover, run_discovery
from continual.candidates.graph import list_candidates
from continual.candidates.params import DiscoveryParams
from continual.candidates.review import CandidateError, confirm, reject
from continual.labelled import LabelledExample, LabelledStore
from extractors.base import EntityMention, Extraction, Extractor, RelationMention, UncertainPair
from extractors.encoders import SentenceEmbedder
from pipeline.config import load_config
from pipeline.dead_letter import FileDeadLetterSink
from pipeline.jobs.novelty import discover_from_config
from pipeline.observations import PAIR, Observation, ObservationSink, read_observations
from pipeline.sources.files import FileSource
from pipeline.worker import Worker

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
KEYWORDS = ("birthday", "album")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mnre_groups() -> dict[str, list]:
    """Real MNRE tweets: 25 wishing someone a happy birthday, the 23 about an album, 10 about neither."""
    from extractors.datasets import read_re

    path = SHARED_DATA / "mnre" / "mnre_train.txt"
    if not path.exists():
        unavailable(f"real data missing: {path}")
    groups: dict[str, list] = {"birthday": [], "album": [], "other": [], "known": []}
    seen = set()
    for ex in read_re(path):
        text = " ".join(ex.tokens)
        if text in seen:
            continue
        seen.add(text)
        words = {t.lower() for t in ex.tokens}
        hit = [k for k in KEYWORDS if k in words]
        group = hit[0] if len(hit) == 1 else ("other" if not hit else None)
        if group == "other" and ex.relation in ("/per/org/member_of", "/org/loc/locate_at"):
            group = "known"
        if group and len(groups[group]) < {"other": 10, "known": 60}.get(group, 25):
            groups[group].append(ex)
    return groups


def observation(i: int, group: str, ex, observed: datetime) -> Observation:
    """What the worker records for a pair the model predicted ``None`` on (word spans as the model sees them)."""
    text = " ".join(ex.tokens)
    return Observation(PAIR, f"{group}-{i}", _iso(T0 - timedelta(days=1)), _iso(observed), text, tuple(ex.tokens),
                       tuple(ex.head), " ".join(ex.tokens[ex.head[0]:ex.head[1]]), "PER", tuple(ex.tail),
                       " ".join(ex.tokens[ex.tail[0]:ex.tail[1]]), "MISC", "None", 0.6, "test@1")


def known_store(root, groups) -> LabelledStore:
    """Labelled examples of two known relations (from other tweets than the observations)."""
    store = LabelledStore(root)
    store.add(LabelledExample("mre", f"known-{i}", f"known-{i}", _iso(T0), "train",
                              {"tokens": list(ex.tokens), "head": list(ex.head), "tail": list(ex.tail),
                               "relation": ex.relation, "head_type": "PER", "tail_type": "ORG"})
              for i, ex in enumerate(groups["known"]))
    return store


@pytest.fixture(scope="module")
def minilm():
    """The real MiniLM, each distinct text embedded once per module (re-runs see the same texts)."""
    import numpy as np

    torch.set_num_threads(2)
    model, memo = SentenceEmbedder(), {}

    def embed(texts):
        todo = sorted({t for t in texts if t not in memo})
        if todo:
            memo.update(zip(todo, model(todo)))
        return np.stack([memo[t] for t in texts])

    return embed


def _write_observations(root, groups, observed: datetime) -> dict[str, str]:
    sink = ObservationSink(root, clock=lambda: observed)
    group_of = {}
    for group in ("birthday", "album", "other"):
        for i, ex in enumerate(groups[group]):
            obs = observation(i, group, ex, observed)
            sink.send([obs])
            group_of[obs.post_id] = group
    sink.close()
    return group_of


def test_two_relation_patterns_become_candidates_once(graph_store, tmp_path, minilm):
    groups = mnre_groups()
    group_of = _write_observations(tmp_path / "obs", groups, T0)
    texts = {o.post_id: o.text for o in read_observations(tmp_path / "obs", T0, T0 + timedelta(seconds=1))}
    graph_store.execute([("UNWIND $rows AS r MERGE (p:Post {id: r.id}) SET p.text = r.text",
                          {"rows": [{"id": k, "text": v} for k, v in texts.items()]})])
    labelled = known_store(tmp_path / "labelled", groups)
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))

    report = run_discovery(tmp_path / "obs", *window, graph_store, labelled, embed=minilm, now=T0)
    assert report.observations == {"relation": len(group_of), "type": 0} and len(group_of) >= 55
    made = {}
    for cand in report.candidates:
        assert cand.created and cand.status == "pending"
        members = Counter(group_of[p] for p in cand.example_post_ids)
        made[members.most_common(1)[0][0]] = cand
    assert sorted(made) == ["album", "birthday"] and len(report.candidates) == 2

    rows = graph_store.query("MATCH (c:CandidateRelation) RETURN c.id, c.status, c.size, c.density, c.members, "
                             "c.created_at ORDER BY c.id").rows
    assert [r[0] for r in rows] == sorted(c.id for c in report.candidates)
    for cid, status, size, density, members, created in rows:
        posts = [json.loads(m)["post_id"] for m in members]
        purity = Counter(group_of[p] for p in posts).most_common(1)[0][1] / len(posts)
        assert status == "pending" and size == len(posts) >= 8 and purity >= 0.8, (cid, Counter(map(group_of.get, posts)))
        assert density >= DiscoveryParams().min_density and created == _iso(T0)
    linked = graph_store.query("MATCH (c:CandidateRelation)-[:EXAMPLE]->(p:Post) RETURN c.id, p.id").rows
    assert {(cid, pid) for cid, pid in linked} == {(c.id, p) for c in report.candidates for p in c.example_post_ids}
    assert all(len(c.example_post_ids) == 5 for c in report.candidates)

    # the next hourly run over the same window updates the same nodes instead of adding new ones
    again = run_discovery(tmp_path / "obs", *window, graph_store, labelled, embed=minilm, now=T0 + timedelta(hours=1))
    assert sorted(c.id for c in again.candidates) == sorted(c.id for c in report.candidates)
    assert not any(c.created for c in again.candidates)
    assert again.as_dict()["candidates_new"] == 0 and again.as_dict()["candidates_updated"] == 2
    rows = graph_store.query("MATCH (c:CandidateRelation) RETURN c.created_at, c.updated_at").rows
    assert len(rows) == 2 and all(r == [_iso(T0), _iso(T0 + timedelta(hours=1))] for r in rows)

    # a person names one and rejects the other; later runs keep both decisions
    result = confirm(graph_store, labelled, made["birthday"].id, "/per/per/birthday_wish", now=T0)
    assert result["status"] == "confirmed" and result["new_examples"] == result["examples"] >= 8
    learned = [ex for ex in LabelledStore(tmp_path / "labelled").all("mre") if ex.classes == {"/per/per/birthday_wish"}]
    assert len(learned) == result["examples"]
    assert Counter(group_of[ex.post_id] for ex in learned).most_common(1)[0][0] == "birthday"
    reject(graph_store, made["album"].id, now=T0)
    with pytest.raises(CandidateError):
        reject(graph_store, made["birthday"].id)
    with pytest.raises(CandidateError):
        confirm(graph_store, labelled, made["album"].id, "/per/misc/released")
    with pytest.raises(CandidateError):
        confirm(graph_store, labelled, "cand-rel-nope", "/per/misc/released")
    third = discover(tmp_path / "obs", *window, graph_store, labelled, embed=minilm, now=T0 + timedelta(hours=2))
    assert len(third) == 2 and not any(c.created for c in third)
    status = {c["id"]: (c["status"], c["name"]) for c in list_candidates(graph_store)}
    assert status == {made["birthday"].id: ("confirmed", "/per/per/birthday_wish"), made["album"].id: ("rejected", None)}


def test_known_relations_are_not_proposed(embedded_store, tmp_path, minilm):
    """The same tweets, but a labelled store that already holds the birthday pattern as a class."""
    groups = mnre_groups()
    _write_observations(tmp_path / "obs", groups, T0)
    store = known_store(tmp_path / "labelled", groups)
    store.add(LabelledExample("mre", f"bday-{i}", f"bday-{i}", _iso(T0), "train",
                              {"tokens": list(ex.tokens), "head": list(ex.head), "tail": list(ex.tail),
                               "relation": "/per/per/birthday_wish", "head_type": "PER", "tail_type": "PER"})
              for i, ex in enumerate(groups["birthday"]))
    report = run_discovery(tmp_path / "obs", T0 - timedelta(hours=1), T0 + timedelta(hours=1), embedded_store, store,
                           embed=minilm, now=T0)
    assert report.decisions["relation"].get("known", 0) >= 1
    assert len(report.candidates) == 1  # the album pattern only
    [cand] = report.candidates
    assert all(p.startswith("album-") for p in cand.example_post_ids)


def test_discover_from_config_reads_the_last_hours(short_tmp, tmp_path):
    groups = mnre_groups()
    cfg = load_config(None, environ={})
    cfg.graph.embedded_dir = short_tmp / "graph"
    cfg.novelty.observations_dir = tmp_path / "obs"
    cfg.continual.labelled_dir = tmp_path / "labelled"
    now = datetime.now(timezone.utc)
    _write_observations(tmp_path / "obs", {**groups, "album": [], "other": []}, now - timedelta(hours=30))  # too old
    _write_observations(tmp_path / "obs", {**groups, "birthday": []}, now - timedelta(hours=2))
    torch.set_num_threads(2)
    summary = discover_from_config(cfg, window_hours=24)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["observations"] == len(groups["album"]) + len(groups["other"]) and summary["candidates_new"] == 1 and summary["candidates_updated"] == 0
    assert summary["clusters"] >= 1 and summary["candidates"][0]["kind"] == "relation"


class UnsureExtractor(Extractor):
    """Wiring stub: every post gets one confident fact and one pair the 'model' found no relation for."""

    name, version = "unsure", "1"

    def extract(self, batch):
        out = []
        for item in batch:
            a = EntityMention(item.text.split()[0], "PER", 0, len(item.text.split()[0]), 0.9)
            b_start = item.text.index(item.text.split()[-1])
            b = EntityMention(item.text.split()[-1], "ORG", b_start, len(item.text), 0.9)
            out.append(Extraction(item.post_id, [a, b], [RelationMention(a, b, "MEMBER_OF", 0.9)],
                                  [UncertainPair(b, a, "None", 0.42)]))
        return out


def test_worker_records_uncertain_pairs_before_committing(short_tmp, embedded_store):
    posts = [{"id": f"p{i}", "text": f"Ann{i} joined Acme{i}", "created_at": "2026-03-01T10:00:00Z"} for i in range(5)]
    log = write_jsonl(short_tmp / "stream.jsonl", posts + [b"{broken"])
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    sink = ObservationSink(short_tmp / "obs", clock=lambda: T0)
    source = FileSource([log], checkpoint=short_tmp / "ckpt.json")
    committed_with = []
    commit = source.commit
    source.commit = lambda records: (committed_with.append(sink.written), commit(records))
    worker = Worker(source, UnsureExtractor(), embedded_store, dead, batch_size=3, observations=sink)
    metrics = worker.run()
    dead.close()
    obs = read_observations(short_tmp / "obs", T0, T0 + timedelta(seconds=1))
    assert [(o.post_id, o.head_text, o.tail_text, o.label, o.confidence) for o in obs] == [
        (f"p{i}", f"Acme{i}", f"Ann{i}", "None", 0.42) for i in range(5)]
    assert obs[0].tokens == ("Ann0", "joined", "Acme0") and obs[0].model_version == "unsure@1"
    assert obs[0].post_time == "2026-03-01T10:00:00.000000Z" and obs[0].head == (2, 3) and obs[0].tail == (0, 1)
    assert committed_with == [3, 5]  # every batch's observations were on disk before its commit
    assert metrics.observations_recorded == 5 and metrics.dead_lettered == 1
    assert embedded_store.query("MATCH ()-[r:MEMBER_OF]->() RETURN count(r)").rows == [[5]]


def keyword_embed(texts):
    """Hand-made vectors: texts with 'alpha' point one way, others another, with a little spread."""
    import numpy as np

    out = []
    for i, t in enumerate(texts):
        v = np.zeros(8)
        v[0 if "alpha" in t else 1] = 1.0
        v[2 + i % 6] = 0.1
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_cli_lists_confirms_and_rejects_candidates(short_tmp, tmp_path, capsys):
    import yaml

    from graph_store.embedded import EmbeddedGraphStore
    from pipeline.cli import main

    sink = ObservationSink(tmp_path / "obs", clock=lambda: T0)
    for i in range(12):
        word = "alpha" if i % 2 else "beta"
        tokens = ("Ann", "says", word, "to", "Bob", str(i))
        sink.send([Observation(PAIR, f"p{i}", _iso(T0), _iso(T0), " ".join(tokens), tokens, (0, 1), "Ann", "PER",
                               (4, 5), "Bob", "PER", "None", 0.5, "m@1", ((0, 1, "PER"), (4, 5, "PER")))])
    sink.close()
    graph = EmbeddedGraphStore(short_tmp / "graph")
    try:
        made = discover(tmp_path / "obs", T0, T0 + timedelta(seconds=1), graph, None, embed=keyword_embed, now=T0)
    finally:
        graph.close()
    assert len(made) == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"graph": {"embedded_dir": str(short_tmp / "graph")},
                                   "continual": {"labelled_dir": str(tmp_path / "labelled")},
                                   "logging": {"level": "WARNING"}}))

    assert main(["candidates", "list", "--format", "json", "--config", str(cfg)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in rows) == sorted(c.id for c in made)
    assert all(r["status"] == "pending" and r["size"] == 6 and len(r["example_texts"]) == 5 for r in rows)
    first, second = sorted(c.id for c in made)
    assert main(["candidates", "confirm", first, "--name", "bad name", "--config", str(cfg)]) == 1
    assert "identifier" in capsys.readouterr().err
    assert main(["candidates", "confirm", first, "--name", "/per/per/greets", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["new_examples"] == 6
    assert len(LabelledStore(tmp_path / "labelled").all("mre")) == 6
    assert main(["candidates", "reject", second, "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["candidates", "list", "--status", "pending", "--format", "json", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["candidates", "list", "--config", str(cfg)]) == 0
    table = capsys.readouterr().out
    assert "confirmed" in table and "rejected" in table and "/per/per/greets" in table
