"""One bad post never stops the stream (issue #15), on the embedded graph.

Each case found by feeding the worker hostile input is replayed here between
good posts: the bad post is dead-lettered with its stage, the good ones
behind it are written, and the worker goes on. The property-based version
over thousands of generated inputs is tests/integration/test_fuzz_worker.py.
"""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading

import pytest
from helpers import write_jsonl
from PIL import Image

from extractors.base import Extraction, Extractor
from graph_store.base import GraphRejected, GraphUnavailable
from pipeline.dead_letter import FileDeadLetterSink, read_dead_letters
from pipeline.images import ImagePolicy
from pipeline.sources.files import FileSource
from pipeline.worker import GraphDown, Worker

T0 = "2026-01-01T00:00:00Z"
MKG = [sys.executable, "-m", "pipeline.cli"]


def good(i: int, text: str | None = None, **extra) -> dict:
    return {"id": f"good-{i}", "text": text or f"Angela Merkel met Emmanuel Macron in Paris {i}",
            "created_at": T0, **extra}


class GivenEntities(Extractor):
    """Light extractor: the post's gold entities, consecutive pairs CO_MENTIONED.

    ``uses_images`` can be switched on to make the worker decode images; the
    extractor then records what it was given.
    """

    name, version = "given", "1"

    def __init__(self, uses_images: bool = False) -> None:
        self.uses_images = uses_images
        self.images_seen: list = []

    def extract(self, batch):
        from extractors.base import RelationMention

        out = []
        for item in batch:
            self.images_seen.append(item.image)
            ents = list(item.entities or ())
            rels = [RelationMention(a, b, "CO_MENTIONED", 1.0) for a, b in zip(ents, ents[1:])]
            out.append(Extraction(item.post_id, ents, rels))
        return out


def annotated(i: int, names: list[tuple[str, str]], **extra) -> dict:
    text, ents = "", []
    for n, (name, etype) in enumerate(names):
        start = len(text)
        text += name + " and "
        ents.append({"id": f"e{n}", "start": start, "end": start + len(name), "type": etype})
    return {**good(i, text.removesuffix(" and ")), "annotations": {"entities": ents}, **extra}


def run(tmp, records, extractor=None, graph=None, images=None, batch_size=8, **kw):
    path = write_jsonl(tmp / f"stream-{len(os.listdir(tmp))}.jsonl", records)
    dead = FileDeadLetterSink(tmp / "dead.jsonl")
    worker = Worker(FileSource([path]), extractor or GivenEntities(), graph, dead, batch_size,
                    0.01, 0.05, images=images or ImagePolicy(), **kw)
    try:
        metrics = worker.run()
    finally:
        dead.close()
    return metrics, {l.key.rsplit("|", 1)[1]: l for l in read_dead_letters(tmp / "dead.jsonl")
                     if l.key.startswith(str(path.resolve()))}


def posts_in(store) -> list[str]:
    return sorted(r[0] for r in store.query("MATCH (p:Post) RETURN p.id").rows)


HOSTILE_PARSE = {
    "nested array": b"[" * 100_000 + b"]" * 100_000,
    "nested object": b'{"id": "n", "text": "t", "created_at": "' + T0.encode() + b'", "annotations": '
                     + b'{"entities": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    "5000-digit integer": b'{"id": 1' + b"0" * 5000 + b', "text": "t", "created_at": "2026-01-01T00:00:00Z"}',
    "datetime edge": json.dumps({"id": "d", "text": "t", "created_at": "9999-12-31T23:59:59-12:00"}).encode(),
    "datetime low edge": json.dumps({"id": "d2", "text": "t", "created_at": "0001-01-01T00:00:00+14:00"}).encode(),
    "NUL in text": json.dumps({"id": "n1", "text": "Obama\x00 in Paris", "created_at": T0}).encode(),
    "NUL in author": json.dumps({"id": "n2", "text": "t", "author": "a\x00", "created_at": T0}).encode(),
    "surrogate author": b'{"id": "s1", "text": "t", "author": "\\ud800", "created_at": "2026-01-01T00:00:00Z"}',
    "surrogate source": b'{"id": "s2", "text": "t", "source": "x\\udfff", "created_at": "2026-01-01T00:00:00Z"}',
    "surrogate image path": b'{"id": "s3", "text": "t", "image": {"path": "a\\udc80.png"}, '
                            b'"created_at": "2026-01-01T00:00:00Z"}',
    "surrogate annotation": b'{"id": "s4", "text": "Obama", "created_at": "2026-01-01T00:00:00Z", '
                            b'"annotations": {"entities": [{"id": "e\\ud801", "start": 0, "end": 5, "type": "PER"}]}}',
    "zero-width-only text": json.dumps({"id": "z", "text": "\u200b\u200d\u2060\ufeff", "created_at": T0}).encode(),
    "whitespace id": json.dumps({"id": "  \t", "text": "t", "created_at": T0}).encode(),
}


def test_hostile_payloads_are_dead_lettered_at_parse_and_the_stream_goes_on(short_tmp, embedded_store):
    records = []
    for i, payload in enumerate(HOSTILE_PARSE.values()):
        records += [good(2 * i), payload, good(2 * i + 1)]
    metrics, letters = run(short_tmp, records, graph=embedded_store)
    assert len(letters) == len(HOSTILE_PARSE) == metrics.dead_letters["parse"] == metrics.dead_lettered
    assert all(l.stage == "parse" and l.reason and l.error_type == "InvalidPost" for l in letters.values())
    assert posts_in(embedded_store) == sorted(f"good-{i}" for i in range(2 * len(HOSTILE_PARSE)))
    assert sorted(l.original_payload() for l in letters.values()) == sorted(HOSTILE_PARSE.values())


@pytest.fixture
def image_root(short_tmp):
    root = short_tmp / "images"
    root.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(buf, format="PNG")
    (root / "ok.png").write_bytes(buf.getvalue())
    os.symlink("/dev/zero", root / "zero.png")
    os.symlink("/etc/hostname", root / "out.png")
    os.mkfifo(root / "pipe.png")
    Image.new("1", (30_000, 30_000)).save(root / "bomb.png")  # ~100 KB on disk, 900 MP decoded
    return root


def with_image(i: int, **image) -> dict:
    return good(i, image=image)


def test_hostile_images_are_refused_without_hanging_or_leaking(short_tmp, embedded_store, image_root):
    bomb_b64 = base64.b64encode((image_root / "bomb.png").read_bytes()).decode()
    cases = {
        "ok": with_image(0, path="ok.png"),
        "traversal": with_image(1, path="../../../../etc/passwd"),
        "absolute outside": with_image(2, path="/etc/passwd"),
        "missing outside": with_image(3, path="/etc/no-such-file-here"),
        "symlink to /dev/zero": with_image(4, path="zero.png"),
        "symlink out of the root": with_image(5, path="out.png"),
        "fifo": with_image(6, path="pipe.png"),
        "directory": with_image(7, path="."),
        "bomb file": with_image(8, path="bomb.png"),
        "bomb base64": with_image(9, base64=bomb_b64),
        "garbage base64": with_image(10, base64=base64.b64encode(b"\x89PNG not really").decode()),
        "text only": good(11),
    }
    extractor = GivenEntities(uses_images=True)
    done = []
    thread = threading.Thread(target=lambda: done.append(
        run(short_tmp, list(cases.values()), extractor, embedded_store, ImagePolicy(roots=(image_root,)))))
    thread.start()
    thread.join(timeout=120)
    assert done, "the worker hung on a hostile image"
    metrics, letters = done[0]
    by_case = {name: letters.get(str(n + 1)) for n, name in enumerate(cases)}
    assert by_case["ok"] is None and by_case["text only"] is None
    assert posts_in(embedded_store) == ["good-0", "good-11"]
    refused = {k: v for k, v in by_case.items() if k not in ("ok", "text only")}
    assert all(v is not None and v.stage == "image" for v in refused.values()), refused
    outside = {by_case[k].reason for k in ("traversal", "absolute outside", "missing outside", "symlink out of the root")}
    assert len(outside) == 1, outside  # one reason for all: nothing tells whether a file exists out there
    assert "pixels" in by_case["bomb file"].reason and "pixels" in by_case["bomb base64"].reason
    seen = [im for im in extractor.images_seen if im is not None]
    assert len(seen) == 1 and max(seen[0].size) <= ImagePolicy().max_side and seen[0].mode == "RGB"


def test_images_are_not_decoded_for_a_text_only_extractor(short_tmp, embedded_store, image_root):
    extractor = GivenEntities(uses_images=False)
    metrics, letters = run(short_tmp, [with_image(0, path="ok.png"), with_image(1, path="/etc/passwd")],
                           extractor, embedded_store, ImagePolicy(roots=(image_root,)))
    assert extractor.images_seen == [None]  # the path was checked, the pixels never read
    assert [l.stage for l in letters.values()] == ["image"] and posts_in(embedded_store) == ["good-0"]


def test_ids_are_normalised_and_a_reused_id_with_other_content_is_a_conflict(short_tmp, embedded_store):
    first = good(1, "Barack Obama visited Berlin")
    records = [{**first, "id": " good-1"}, {**first, "id": "good-1 "},  # one post re-sent sloppily
               {**first, "text": "Someone else entirely"}]  # another post under the same id
    metrics, letters = run(short_tmp, records, graph=embedded_store)
    assert posts_in(embedded_store) == ["good-1"]
    assert [(k, l.stage) for k, l in letters.items()] == [("3", "conflict")]
    (text,) = embedded_store.query("MATCH (p:Post {id: 'good-1'}) RETURN p.text").rows[0]
    assert text == first["text"]  # the first version is kept
    # across batches and runs too: the stored hash decides
    _, letters = run(short_tmp, [{**first, "text": "A later edit"}, first], graph=embedded_store)
    assert [(k, l.stage) for k, l in letters.items()] == [("1", "conflict")]
    assert embedded_store.query("MATCH (p:Post) RETURN count(p)").rows == [[1]]


def test_invisible_characters_do_not_split_entities(short_tmp, embedded_store):
    records = [annotated(0, [("barack obama", "PER"), ("Paris", "LOC")]),
               annotated(1, [("\u200bbarack\u200d obama\u202e", "PER"), ("Pa\u00adris", "LOC")])]
    run(short_tmp, records, graph=embedded_store)
    keys = sorted(r[0] for r in embedded_store.query("MATCH (e:Entity) RETURN e.key").rows)
    assert keys == ["LOC:paris", "PER:barack obama"]
    names = sorted(r[0] for r in embedded_store.query("MATCH (e:Entity) RETURN e.name").rows)
    assert all(n.isprintable() and "\u200b" not in n for n in names)


def test_dead_letters_are_written_once_across_crash_restarts(short_tmp, embedded_store):
    records = [good(0), b"{broken", good(1), json.dumps({"id": "x", "text": "\u200b", "created_at": T0}).encode()]
    path = write_jsonl(short_tmp / "s.jsonl", records)
    for _ in range(3):  # a crash before the commit: no checkpoint, the same records come again
        dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
        Worker(FileSource([path]), GivenEntities(), embedded_store, dead, 2).run()
        dead.close()
    assert len(read_dead_letters(short_tmp / "dead.jsonl")) == 2
    # a torn last line (a crash mid-write) is dropped, and its letter is written again whole
    raw = (short_tmp / "dead.jsonl").read_bytes()
    (short_tmp / "dead.jsonl").write_bytes(raw[: raw.rfind(b"\n", 0, len(raw) - 1) + 1] + b'{"stage": "pa')
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    Worker(FileSource([path]), GivenEntities(), embedded_store, dead, 2).run()
    dead.close()
    assert len(read_dead_letters(short_tmp / "dead.jsonl")) == 2


class RejectingGraph:
    """Delegates to a real store; the backend refuses any batch holding a marked
    post (as Neo4j does with a ClientError), or is down (GraphUnavailable)."""

    def __init__(self, inner, marker: str = "", down: bool = False) -> None:
        self.inner, self.marker, self.down, self.writes = inner, marker, down, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def schema(self):
        return self.inner.schema

    @schema.setter
    def schema(self, value):
        self.inner.schema = value

    def write(self, batch):
        self.writes += 1
        if self.down:
            raise GraphUnavailable("connection refused")
        if any(self.marker in p.text for p in batch.posts):
            raise GraphRejected("Neo.ClientError.Statement.TypeError: refused")
        self.inner.write(batch)


def test_a_post_the_graph_rejects_is_found_by_splitting_and_dead_lettered(short_tmp, embedded_store):
    records = [good(i) for i in range(16)]
    records[11] = good(11, "REJECT me")
    graph = RejectingGraph(embedded_store, marker="REJECT")
    metrics, letters = run(short_tmp, records, graph=graph, batch_size=16)
    assert [(k, l.stage, l.error_type) for k, l in letters.items()] == [("12", "graph", "GraphRejected")]
    assert posts_in(embedded_store) == sorted(f"good-{i}" for i in range(16) if i != 11)
    assert graph.writes <= 2 * 4 + 1  # a bisection, not a retry per post


def test_an_unavailable_graph_is_retried_up_to_the_limit_then_the_worker_stops_uncommitted(short_tmp, embedded_store):
    path = write_jsonl(short_tmp / "s.jsonl", [good(0), good(1)])
    ckpt = short_tmp / "ckpt.json"
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    graph = RejectingGraph(embedded_store, down=True)
    worker = Worker(FileSource([path], checkpoint=ckpt), GivenEntities(), graph, dead, 8, 0.01, 0.05,
                    retry_limit_s=0.5)
    with pytest.raises(GraphDown, match="unavailable for more than 0.5 s"):
        worker.run()
    dead.close()
    assert graph.writes > 2 and not ckpt.exists() and read_dead_letters(short_tmp / "dead.jsonl") == []
    # once the graph is back, a restart writes everything
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    Worker(FileSource([path], checkpoint=ckpt), GivenEntities(), embedded_store, dead, 8).run()
    dead.close()
    assert posts_in(embedded_store) == ["good-0", "good-1"]


class ExplodingExtractor(GivenEntities):
    def extract(self, batch):
        if any("BOOM" in item.text for item in batch):
            raise RecursionError("maximum recursion depth exceeded")
        return super().extract(batch)


def test_an_extractor_failure_is_one_posts_dead_letter(short_tmp, embedded_store):
    records = [good(0), good(1, "BOOM goes the model"), good(2)]
    metrics, letters = run(short_tmp, records, ExplodingExtractor(), embedded_store)
    assert [(k, l.stage, l.error_type) for k, l in letters.items()] == [("2", "extract", "RecursionError")]
    assert posts_in(embedded_store) == ["good-0", "good-2"]


@pytest.mark.parametrize("setup, expect", [
    ("missing-source", "no such post file"),
    ("dead-letters-under-a-file", "dead-letter file"),
])
def test_start_up_errors_are_one_clear_line(short_tmp, setup, expect):
    blocker = short_tmp / "a-file"
    blocker.write_text("x")
    cfg = {"source": {"path": str(short_tmp / "missing.jsonl")}, "graph": {"embedded_dir": str(short_tmp / "graph")},
           "extractor": {"kind": "spacy"},
           "worker": {"dead_letter_path": str(short_tmp / "dead.jsonl"), "state_dir": str(short_tmp / "state")}}
    if setup == "dead-letters-under-a-file":
        cfg["source"]["path"] = str(write_jsonl(short_tmp / "s.jsonl", [good(0)]))
        cfg["worker"]["dead_letter_path"] = str(blocker / "dead.jsonl")
    (short_tmp / "c.json").write_text(json.dumps(cfg))
    out = subprocess.run(MKG + ["worker", "--config", str(short_tmp / "c.json")], capture_output=True, text=True,
                         timeout=120, cwd=short_tmp, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 1, out.stderr
    lines = [l for l in out.stderr.splitlines() if l.startswith("mkg: error:")]
    assert len(lines) == 1 and expect in lines[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.integration
def test_a_post_neo4j_refuses_is_dead_lettered_and_the_rest_written(short_tmp, neo4j_store):
    # An entity name past Neo4j's index-key size limit (8 KB for a range
    # index): the server itself refuses the MERGE with a ClientError. Not
    # transient, so it must not be retried forever nor stop the stream.
    huge = "x" * 9000
    records = [annotated(0, [("Ann", "PER"), ("Acme", "ORG")]), annotated(1, [(huge, "PER"), ("Bob", "PER")]),
               annotated(2, [("Cleo", "PER"), ("Paris", "LOC")])] + [good(i) for i in range(3, 10)]
    metrics, letters = run(short_tmp, records, graph=neo4j_store, batch_size=10)
    assert [(k, l.stage, l.error_type) for k, l in letters.items()] == [("2", "graph", "GraphRejected")]
    assert posts_in(neo4j_store) == sorted(f"good-{i}" for i in range(10) if i != 1)
