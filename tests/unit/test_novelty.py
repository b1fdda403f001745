"""Novelty detection knows what the extractor in use knows: with ``extractor.kind: auto`` and
nothing promoted, that is the version shipped in the package (as for the worker)."""
from __future__ import annotations

from continual.labelled import LabelledExample
from extractors.store import ModelStore
from pipeline.config import load_config
from pipeline.jobs.novelty import detect_novelty, labelled_store_of

SHIPPED_RELATION = "/per/org/member_of"  # one of the shipped MRE version's labels
NEW_RELATION = "/per/org/founded_by"  # none of them


def _examples(relation: str, n: int) -> list[LabelledExample]:
    return [LabelledExample("mre", f"{relation}|{i}", f"p{relation}{i}", "2026-03-01T12:00:00.000000Z", "train",
                            {"tokens": ["Ann", "of", "Acme", str(i)], "head": [0, 1], "tail": [2, 3],
                             "relation": relation, "head_type": "PER", "tail_type": "ORG", "image_id": ""})
            for i in range(n)]


def _config(tmp_path, kind: str):
    cfg = load_config(None, environ={})
    cfg.extractor.kind = kind
    cfg.extractor.models_dir = tmp_path / "models"  # nothing promoted here
    cfg.continual.labelled_dir, cfg.continual.tasks_dir = tmp_path / "labelled", tmp_path / "tasks"
    cfg.continual.kinds, cfg.continual.min_examples = ["mre"], 3
    labelled_store_of(cfg).add(_examples(SHIPPED_RELATION, 4) + _examples(NEW_RELATION, 4))
    return cfg


def test_with_nothing_promoted_the_shipped_classes_are_known(tmp_path):
    shipped = ModelStore(tmp_path / "empty", shipped=True)
    labels = shipped.config("mre", shipped.current_version("mre"))["labels"]
    assert SHIPPED_RELATION in labels and NEW_RELATION not in labels
    decision = detect_novelty(_config(tmp_path, "auto"), ingest=False)
    assert [t["classes"] for t in decision.tasks] == [[NEW_RELATION]]


def test_without_the_shipped_fallback_every_labelled_class_is_new(tmp_path):
    """extractor.kind: multimodal uses the model store only, as the worker does."""
    decision = detect_novelty(_config(tmp_path, "multimodal"), ingest=False)
    assert [sorted(t["classes"]) for t in decision.tasks] == [sorted([NEW_RELATION, SHIPPED_RELATION])]
