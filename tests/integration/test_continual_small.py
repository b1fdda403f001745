"""A real but small class-incremental run: IMRE sep10, 2 tasks, MSPT and fine-tuning.

Real MiniLM and real data (150 training examples per task, one epoch);
random-init vision, since IMRE ships no images and the vision stream only
reads its learned no-image tokens. It checks the harness end to end and that
the mechanics hold in a real run (the numbers themselves are too small to
compare methods: see BENCHMARKS.md for full runs).
"""
from __future__ import annotations

import csv
import json

import pytest
from helpers import SHARED_DATA, unavailable

from continual.benchmark import BenchmarkConfig, run_benchmark


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    if not (SHARED_DATA / "imre" / "sep10").exists():
        unavailable(f"real data missing: {SHARED_DATA / 'imre'}")
    out = tmp_path_factory.mktemp("continual")
    cfg = BenchmarkConfig(kind="mre", variant="sep10", methods=["mspt", "finetune"], n_tasks=2, limit=150,
                          test_limit=150, epochs=1, vision="random-vit-small", device="cpu", out_dir=out,
                          progress=False)
    return run_benchmark(cfg), out


def test_report_files_exist(small_run):
    result, out = small_run
    for name in ("results.json", "results.csv", "results.md", "accuracy.png", "modulation.png",
                 "mspt/memory.json", "mspt/modulation.csv", "finetune/modulation.csv"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["method"], r["task"]) for r in rows] == [("mspt", "0"), ("mspt", "1"), ("finetune", "0"),
                                                         ("finetune", "1")]
    assert json.loads((out / "results.json").read_text())["benchmark"] == "imre-sep10"
    md = (out / "results.md").read_text()
    assert "| mspt |" in md and "| finetune |" in md


def test_progress_has_each_task_as_it_finished(small_run):
    result, out = small_run
    lines = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [(p["method"], p["task"]) for p in lines] == [("mspt", 0), ("mspt", 1), ("finetune", 0), ("finetune", 1)]
    for p in lines:
        task = result["methods"][p["method"]]["tasks"][p["task"]]
        assert (p["A"], p["U"], p["val_A"], p["per_task_f1"]) == (task["A"], task["U"], task["val_A"],
                                                                   task["per_task_f1"])


def test_the_classifier_grew_and_scores_are_sane(small_run):
    result, _ = small_run
    assert [t["new_classes"] for t in result["stream"]] == [["/per/misc/religion", "/per/per/peer"],
                                                             ["/per/org/member_of", "/per/per/charges"]]
    for name, r in result["methods"].items():
        assert [t["n_labels"] for t in r["tasks"]] == [3, 5], name
        assert r["labels"][:3] == ["None", "/per/misc/religion", "/per/per/peer"]
        for t in r["tasks"]:
            assert 0.0 <= t["A"] <= 100.0 and 0.0 <= t["U"] <= 100.0
            assert len(t["per_task_f1"]) == t["task"] + 1 and t["per_task_f1"][-1] == t["U"]
            assert t["test_examples"] == 150
            assert 0.0 <= t["val_A"] <= 100.0 and 0.0 <= t["val_U"] <= 100.0
        # validation A_k beside the test A_k: on the cumulative val split (every task's val up to k)
        val_sizes = [s["val"] for s in result["stream"]]
        assert val_sizes[0] > 0 and [t["val_examples"] for t in r["tasks"]] == [val_sizes[0], sum(val_sizes[:2])]
        assert r["mean_val_A"] == pytest.approx(sum(t["val_A"] for t in r["tasks"]) / 2)
    assert result["methods"]["finetune"]["tasks"][1]["train_examples"] == 150


def test_mspt_mechanics_in_the_run(small_run):
    result, out = small_run
    mspt, finetune = result["methods"]["mspt"], result["methods"]["finetune"]
    # memory: 6 prototypes of each task-0 class, replayed in task 2
    memory = json.loads((out / "mspt" / "memory.json").read_text())
    assert memory["strategy"] == "prototype"
    for cls in ("/per/misc/religion", "/per/per/peer"):
        assert memory["classes"][cls]["task"] == 0 and len(memory["classes"][cls]["examples"]) == 6
        assert all(e["relation"] == cls for e in memory["classes"][cls]["examples"])
    assert mspt["tasks"][1]["train_examples"] == 150 + 12
    # distillation: nothing to distil from in task 1, a real loss in task 2
    assert mspt["tasks"][0]["l_ad"] == 0.0 and mspt["tasks"][1]["l_ad"] > 0.0
    assert finetune["tasks"][1]["l_ad"] is None
    # modulation: logged every step; applied coefficients in (0, 1]
    steps = mspt["modulation"]
    assert len(steps) == mspt["tasks"][0]["steps"] + mspt["tasks"][1]["steps"]
    assert all(0.0 < s["applied_text"] <= 1.0 and 0.0 < s["applied_vision"] <= 1.0 for s in steps)
    assert all(s["applied_text"] == 1.0 and s["applied_vision"] == 1.0 for s in finetune["modulation"])
    task2 = {(s["applied_text"], s["applied_vision"]) for s in steps if s["task"] == 1}
    assert len(task2) == 1  # Remark 1: one coefficient pair (task 1's average) for all of task 2
    assert mspt["spec"]["interaction"] and not finetune["spec"]["interaction"]
    # balance: logit offsets from the run's label prior to the stream's; none after the first task (they
    # are the same). After the second, an old relation the memory keeps 6 of its ~144 examples of
    # (peer) gets a larger offset than the new ones; one whose 6 examples the memory holds in full
    # (religion) is as frequent as in the stream and gets the new ones' offset
    assert mspt["tasks"][0]["adjustment"] == pytest.approx([0.0] * 3, abs=1e-4)
    adj = mspt["tasks"][1]["adjustment"]  # None, religion, peer, member_of, charges
    assert len(adj) == 5 and finetune["tasks"][1]["adjustment"] is None
    assert adj[2] > max(adj[3:]) + 1.0 and adj[1] == pytest.approx(adj[3], abs=1e-3)


def test_imner_two_tasks_grow_the_crf(tmp_path):
    """IMNER PLOM, 2 tasks, tiny: the CRF grows by B-/I-LOC, memory holds PER sentences, EWC is active."""
    if not (SHARED_DATA / "imner").exists():
        unavailable(f"real data missing: {SHARED_DATA / 'imner'}")
    cfg = BenchmarkConfig(kind="mner", variant="PLOM", methods=["mspt", "replay_ewc"], n_tasks=2, limit=40,
                          test_limit=40, epochs=1, vision="random-vit-small", device="cpu", out_dir=tmp_path,
                          progress=False)
    result = run_benchmark(cfg)
    for name, r in result["methods"].items():
        assert r["labels"] == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], name
        assert [t["n_labels"] for t in r["tasks"]] == [3, 5]
        memory = json.loads((tmp_path / name / "memory.json").read_text())
        per = memory["classes"]["PER"]["examples"]
        assert len(per) == 6 and all("B-PER" in e["tags"] for e in per)
    mspt, rewc = result["methods"]["mspt"], result["methods"]["replay_ewc"]
    assert mspt["tasks"][0]["l_ad"] == 0.0 and mspt["tasks"][1]["l_ad"] > 0.0
    assert rewc["tasks"][0]["ewc_penalty"] is None and rewc["tasks"][1]["ewc_penalty"] > 0.0
    assert mspt["tasks"][0]["relabelled_spans"] == 0 and rewc["tasks"][1]["relabelled_spans"] == 0
    assert mspt["tasks"][1]["adjustment"] is None  # MNER: relabelling, not logit adjustment


def test_each_task_record_has_per_class_scores_that_add_up_to_a(small_run):
    result, _ = small_run
    for name, r in result["methods"].items():
        for t in r["tasks"]:
            seen = {c for s in result["stream"][: t["task"] + 1] for c in s["new_classes"]}
            per_class = t["per_class"]
            assert set(per_class) <= set(r["labels"][1:]) and seen <= set(per_class), (name, t["task"])
            correct = sum(s["recall"] * s["support"] / 100 for s in per_class.values())
            p = 100 * correct / max(sum(s["predicted"] for s in per_class.values()), 1)
            rec = 100 * correct / max(sum(s["support"] for s in per_class.values()), 1)
            assert abs((2 * p * rec / (p + rec) if p + rec else 0.0) - t["A"]) < 1e-6, (name, t["task"])
