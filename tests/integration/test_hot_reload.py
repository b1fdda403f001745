"""A model promoted while the worker is in the middle of a batch.

The worker swaps models only between batches (``Worker.process`` calls
``extractor.refresh()`` first), so a promotion that happens while batch k is
being extracted must leave batch k entirely on the old version and give every
later batch the new one, without losing or repeating a post.

The extractor here is the real :class:`MultimodalExtractor` with its real
``refresh`` (model pointers read from a real :class:`ModelStore`, promotion by
``ModelStore.promote``); only the heavy part is light: loading builds no
network and extraction is spaCy's, so the test runs on a CPU in seconds.
"""
from __future__ import annotations

from collections import Counter

from helpers import mnre_posts, write_jsonl

from extractors.multimodal import MultimodalExtractor, _Models
from extractors.store import ModelStore
from pipeline.dead_letter import FileDeadLetterSink
from pipeline.sources.files import FileSource
from pipeline.worker import Worker

BATCH = 20
PROMOTE_DURING = 3  # the batch (1-based) during whose extraction v2 is promoted


class _Labels:
    labels = ["None"]  # known_types() reads the relation model's labels


class PromotingExtractor(MultimodalExtractor):
    """MultimodalExtractor whose models are spaCy; promotes ``v2`` from inside batch k's extraction."""

    uses_images = False

    def __init__(self, models_dir, inner, store: ModelStore) -> None:
        self.inner, self.promoter = inner, store
        self.calls = 0
        self.extracted: list[tuple[str, str]] = []  # (post id, version that extracted it)
        super().__init__(models_dir)

    def _load(self) -> _Models:
        mner_v, mre_v = self._pointers()
        return _Models(None, None, _Labels(), None, f"{mner_v}+{mre_v}")

    def extract(self, batch):
        m = self._models  # as the real extract: one set of models for the whole call
        self.calls += 1
        half = len(batch) // 2
        out = self.inner.extract(batch[:half])
        if self.calls == PROMOTE_DURING:
            self.promoter.promote("mre", "v2")  # mid-batch, between two halves of its extraction
        out += self.inner.extract(batch[half:])
        self.extracted += [(item.post_id, m.version) for item in batch]
        return out


def _version(store: ModelStore, name: str) -> None:
    folder = store.root / "mre" / "versions" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")


def test_promotion_during_a_batch_takes_effect_at_the_next_batch(short_tmp, embedded_store, spacy_extractor):
    store = ModelStore(short_tmp / "models")
    for name in ("v1", "v2"):
        _version(store, name)
    store.promote("mre", "v1")
    extractor = PromotingExtractor(short_tmp / "models", spacy_extractor, store)
    v1 = extractor.model_version
    posts = mnre_posts(5 * BATCH)
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([write_jsonl(short_tmp / "stream.jsonl", posts)]), extractor, embedded_store, dead,
                    batch_size=BATCH)
    metrics = worker.run()
    dead.close()
    v2 = extractor.model_version
    assert v1 == "mkg-multimodal@None+v1" and v2 == "mkg-multimodal@None+v2"
    assert extractor.calls == 5 and metrics.batches_committed == 5 and metrics.dead_lettered == 0

    ids = [p["id"] for p in posts]
    cut = PROMOTE_DURING * BATCH  # batches 1..k: the old version; k+1..: the new one
    expected = {pid: (v1 if i < cut else v2) for i, pid in enumerate(ids)}
    # each post extracted exactly once, by the models its batch started with
    assert Counter(pid for pid, _ in extractor.extracted) == Counter(ids)
    assert {pid: f"mkg-multimodal@{v}" for pid, v in extractor.extracted} == expected
    # and the graph says the same: every post once, recorded with the version that extracted it
    assert sorted(r[0] for r in embedded_store.query("MATCH (p:Post) RETURN p.id").rows) == sorted(ids)
    mentions = embedded_store.query("MATCH (p:Post)-[m:MENTIONS]->(:Entity) "
                                    "RETURN p.id, collect(DISTINCT m.model_version)").rows
    assert {pid: versions for pid, versions in mentions} == {pid: [expected[pid]] for pid, _ in mentions}
    assert {expected[pid] for pid, _ in mentions} == {v1, v2}
    # the facts of batch k carry only the old version; those of later batches only the new one
    facts = embedded_store.query("MATCH (:Entity)-[r]->(:Entity) RETURN r.post_ids, r.model_versions").rows
    for post_ids, versions in facts:
        assert set(versions) == {expected[pid] for pid in post_ids}, (post_ids, versions)
    assert {v for _, versions in facts for v in versions} == {v1, v2}
    assert metrics.posts_written == len(posts)
