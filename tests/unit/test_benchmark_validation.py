"""The harness scores every task on the cumulative validation split, beside the test split."""
from __future__ import annotations

import pytest

from continual import benchmark
from continual.evaluation import score_after_task
from continual.streams import Task, TaskStream
from extractors.datasets import REExample


def _ex(rel: str, i: int) -> REExample:
    return REExample(("w", str(i), "x"), (0, 1), (2, 3), rel, f"{i}.jpg")


def test_validation_scores_use_every_val_split_up_to_task_k(monkeypatch):
    val0 = [_ex("a", 0), _ex("None", 1)]
    val1 = [_ex("b", 2), _ex("b", 3), _ex("None", 4)]
    stream = TaskStream("mre", "toy", ["None"], [
        Task(0, [], val0, [_ex("a", 9)], ["a"], ["a"]),
        Task(1, [], val1, [_ex("b", 8)], ["b"], ["b"])])
    seen = []

    def fake_predict(adapter, model, examples, device="cpu"):  # a model that knows "a" only
        seen.append(list(examples))
        return [e.relation for e in examples], ["a" if e.relation == "a" else "None" for e in examples]

    monkeypatch.setattr(benchmark, "predict", fake_predict)
    first = benchmark._validation_scores(None, None, stream, 0, "cpu")
    after = benchmark._validation_scores(None, None, stream, 1, "cpu")
    assert seen == [val0, val0 + val1]  # validation, never test; cumulative
    assert first == {"val_A": 100.0, "val_U": 100.0, "val_examples": 2}
    expected = score_after_task("mre", ["a", "None", "b", "b", "None"], ["a", "None", "None", "None", "None"],
                                [["a"], ["b"]])
    assert after == {"val_A": expected["A"], "val_U": expected["U"], "val_examples": 5}
    assert after["val_A"] == pytest.approx(50.0) and after["val_U"] == 0.0  # 1 of 3 gold found, 1 predicted


def test_mean_ignores_tasks_without_validation():
    assert benchmark._mean([50.0, None, 70.0]) == pytest.approx(60.0)
    assert benchmark._mean([None]) is None
