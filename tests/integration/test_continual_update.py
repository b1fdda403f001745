"""The continual update outside Airflow: entity types (MNER) and the `mkg continual` commands."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import append_jsonl, dag_config, imre_posts

pytestmark = pytest.mark.integration


def test_new_entity_types_become_an_mner_task_that_trains_and_is_decided(short_tmp):
    """Labelled posts carry typed entity spans; with no tagger yet every type is new (the first task)."""
    append_jsonl(short_tmp / "labelled.jsonl", imre_posts(1, 60, relations={"/per/org/member_of", "None"}))
    config = dag_config(short_tmp, continual={"kinds": ["mner"], "epochs": 1, "lr": 1e-4, "min_examples": 5,
                                              "gate_min_new_f1": 0.0},
                        extractor={"kind": "spacy"}, source={"follow": False})
    mkg = [sys.executable, "-m", "pipeline.cli", "continual"]
    detected = subprocess.run(mkg + ["detect", "--config", str(config)], capture_output=True, text=True, timeout=600)
    assert detected.returncode == 0, detected.stderr[-3000:]
    (task,) = json.loads(detected.stdout)["tasks"]
    assert task["kind"] == "mner" and {"PER", "ORG"} <= set(task["classes"])
    updated = subprocess.run(mkg + ["update", "--config", str(config)], capture_output=True, text=True, timeout=900)
    assert updated.returncode == 0, updated.stdout[-2000:] + updated.stderr[-3000:]
    report = json.loads(updated.stdout)
    assert report["task"] == task["id"] and report["status"] == "promoted", updated.stderr[-3000:]
    cfg = json.loads((short_tmp / "models" / "mner" / "versions" / report["version"] / "config.json").read_text())
    assert {f"{p}-{t}" for t in task["classes"] for p in "BI"} | {"O"} == set(cfg["labels"])
    assert (short_tmp / "models" / "mner" / "current").read_text().strip() == report["version"]
    memory = json.loads((short_tmp / "models" / "mner" / "versions" / report["version"] / "memory.json").read_text())
    assert set(memory["classes"]) == set(task["classes"])
    listed = subprocess.run(mkg + ["tasks", "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert [t["status"] for t in json.loads(listed.stdout)] == ["promoted"]


def test_first_model_starts_from_the_configured_seed_not_the_process_state(short_tmp):
    """Two updates of the same task must train the same model; the first model's new layers are drawn
    from ``continual.seed`` whatever the process did with the global RNG before."""
    import hashlib

    import torch

    from continual.labelled import LabelledStore
    from continual.update import _start
    from extractors.store import ModelStore
    from pipeline.config import load_config

    cfg = load_config(dag_config(short_tmp))

    def initial_weights(rng_state: int) -> str:
        torch.manual_seed(rng_state)
        torch.rand(rng_state % 97 + 1)  # some earlier, unrelated use of the global generator
        start = _start("mre", ModelStore(cfg.extractor.models_dir), LabelledStore(short_tmp / "labelled"), cfg, "cpu")
        return hashlib.sha256(b"".join(t.numpy().tobytes() for t in start.model.state_dict().values())).hexdigest()

    assert initial_weights(1) == initial_weights(12345)
