"""A small graph of hostile posts for the console tests: script tags, right-to-left overrides and
zero-width characters in post text, entity names and a candidate's examples; one extracted, one
zero-shot and one inferred edge; a pending candidate relation; a labelled class to merge into."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from continual.candidates.graph import RELATION, write_candidates
from continual.labelled import LabelledExample, LabelledStore
from graph_store.records import GraphBatch, InferredFact
from graph_store.schema import LabelSchema
from pipeline.config import load_config
from pipeline.gold import GOLD_VERSION, gold_extraction
from pipeline.post import parse_post
from pipeline.to_graph import add_post

SCRIPT = "<script>document.title='pwned'</script>"
RLO = "\u202e"  # right-to-left override
ZWSP = "\u200b"  # zero-width space
HOSTILE_NAME = f"{SCRIPT}Evil{ZWSP}Corp"
PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # credit: matplotlib


def _post(pid: str, text: str, ents: list[tuple[str, str]], rels: list[tuple[int, int, str]], image: str | None,
          minute: int) -> dict:
    entities = []
    for i, (surface, etype) in enumerate(ents):
        start = text.index(surface)
        entities.append({"id": f"e{i}", "start": start, "end": start + len(surface), "type": etype})
    post = {"id": pid, "text": text, "created_at": f"2026-11-30T10:{minute:02d}:00Z", "source": "test",
            "author": f"{SCRIPT}author", "annotations": {
                "entities": entities,
                "relations": [{"head": f"e{h}", "tail": f"e{t}", "type": r} for h, t, r in rels]}}
    if image:
        post["image"] = {"path": image}
    return post


POSTS = [
    _post("p-hopper", f"Grace Hopper joined {HOSTILE_NAME} {RLO}today{ZWSP}", [("Grace Hopper", "PER"),
          (HOSTILE_NAME, "ORG")], [(0, 1, "/per/org/member_of")], "grace_hopper.jpg", 1),
    _post("p-navy", f"Grace Hopper served in the United States Navy {SCRIPT}",
          [("Grace Hopper", "PER"), ("United States Navy", "ORG")], [(0, 1, "/per/org/member_of")], None, 2),
    _post("p-yale", "Grace Hopper studied at Yale", [("Grace Hopper", "PER"), ("Yale", "ORG")], [], None, 3),
]


def build_config(tmp: Path, graph_backend: str = "embedded"):
    """A config whose every path lies under ``tmp``; images are read from a folder holding a real photo."""
    cfg = load_config(None, environ={})
    images = tmp / "images"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copy(PHOTO, images / "grace_hopper.jpg")
    cfg.images.roots = [images]
    cfg.worker.dead_letter_path = tmp / "dead_letters.jsonl"
    cfg.continual.labelled_dir = tmp / "labelled"
    cfg.continual.tasks_dir = tmp / "tasks"
    cfg.completion.models_dir = tmp / "models"
    cfg.extractor.models_dir = tmp / "models"
    cfg.graph.backend = graph_backend
    return cfg


def populate(graph, cfg) -> dict:
    """Write the posts, the edges, a pending candidate and a labelled class; return their ids."""
    batch = GraphBatch()
    for wire in POSTS:
        post = parse_post(json.dumps(wire))
        add_post(batch, post, gold_extraction(post), GOLD_VERSION, LabelSchema())
    graph.write(batch)
    # the Yale fact is zero-shot: a confirmed class no model learned yet labelled it
    graph.execute([("MATCH (h:Entity {key: 'PER:grace hopper'}), (t:Entity {key: 'ORG:yale'}) "
                    "CREATE (h)-[:MEMBER_OF {inferred: false, zero_shot: true, confidence: 0.61, "
                    "model_version: 'zero-shot@test', model_versions: ['zero-shot@test'], post_ids: ['p-yale']}]->(t)",
                    {})])
    graph.write_inferred([InferredFact("PER:grace hopper", "ALUMI", "ORG:yale", 0.73,
                                       "completion@test", "2026-11-30T11:00:00Z")], run_id="test")
    tokens = f"Grace Hopper joined {SCRIPT} {RLO}Evil{ZWSP}Corp today".split()
    members = [json.dumps({"key": f"m{i}", "post_id": "p-hopper", "post_time": "2026-11-30T10:01:00Z",
                           "tokens": tokens, "head": [0, 2], "tail": [3, 5], "head_type": "PER", "tail_type": "ORG",
                           "entities": [[0, 2, "PER"], [3, 5, "ORG"]]}) for i in range(3)]
    cid = "cand-rel-0123456789ab"
    write_candidates(graph, RELATION, [{
        "id": cid, "kind": RELATION, "now": "2026-11-30T12:00:00Z", "size": 14, "density": 0.71,
        "known_similarity": 0.42, "nearest_known": "/per/org/member_of", "window_start": "2026-11-30T00:00:00Z",
        "window_end": "2026-11-30T12:00:00Z", "example_post_ids": ["p-hopper"],
        "example_texts": [f"Grace Hopper joined {HOSTILE_NAME} {RLO}today"], "head_types": ["PER"],
        "tail_types": ["ORG"], "model_versions": ["test"], "members": members, "member_count": len(members),
        "centroid": [0.1, 0.2, 0.3]}])
    store = LabelledStore(cfg.continual.labelled_dir, cfg.continual.val_fraction)
    store.add([LabelledExample("mre", "known-1", "p-navy", "2026-11-30T10:02:00Z", "train",
                               {"tokens": ["Grace", "Hopper", "served", "in", "the", "Navy"], "head": [0, 2],
                                "tail": [5, 6], "relation": "/per/org/member_of", "head_type": "PER",
                                "tail_type": "ORG", "image_id": ""})])
    (hostile,) = graph.query("MATCH (e:Entity) WHERE e.name CONTAINS 'Evil' RETURN e.key").rows[0]
    return {"candidate": cid, "hostile_key": hostile}
