"""Per-class scores in continual-learning records: the benchmark report and the harness's task records."""
from __future__ import annotations

from continual.evaluation import per_class
from continual.report import per_class_markdown, write_report


def _result(per_class_scores: dict | None) -> dict:
    task = {"task": 0, "new_classes": ["x"], "A": 50.0, "U": 50.0, "per_task_f1": [50.0], "n_labels": 2,
            "train_examples": 4, "test_examples": 4, "best_epoch": 1, "seconds": 1.0}
    if per_class_scores is not None:
        task["per_class"] = per_class_scores
    return {"benchmark": "imre-sep10", "kind": "mre", "metric": "micro-F1 without None", "config": {"epochs": 1},
            "stream": [{"task": 0, "new_classes": ["x"]}],
            "methods": {"replay": {"tasks": [task], "mean_A": 50.0, "final_A": 50.0, "modulation": []}},
            "seconds": 1.0}


def test_the_report_lists_every_class_after_the_last_task(tmp_path):
    gold, pred = ["x", "x", "None", "y"], ["x", "None", "x", "y"]
    scores = per_class("mre", gold, pred)  # x: 1 of 2 predicted, 1 of 2 found; y: 1 of 1
    md = write_report(_result(scores), tmp_path)["markdown"].read_text()
    assert "## replay: per class after task 1" in md
    assert "| x | 50.00 | 50.00 | 50.00 | 2 |" in md and "| y | 100.00 | 100.00 | 100.00 | 1 |" in md
    assert per_class_markdown(_result(None)) == []  # records from before per-class scores: no section
