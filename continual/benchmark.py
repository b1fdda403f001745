"""The class-incremental benchmark harness (IMRE, IMNER) for every method.

For each method: a fresh model on the same encoders and seed, then for each
task k: grow the output layer by task k's new labels (seeded, so every
method gets the same new rows), train with the method's data, loss and
gradient hook (:func:`extractors.training.fit`), predict the cumulative
test set once and score A_k (all seen classes) and U_k (task k's classes),
score the same on the cumulative validation set (``val_A``/``val_U``: what
design choices are made on, so the test sets are not tuned on), then let the
method keep what it needs (memory, Fisher, teacher, G).
Results go to an output folder (:mod:`continual.report`); a full run takes
minutes to hours per method, so each finished task is also logged and
appended to ``progress.jsonl`` there at once (an interrupted run keeps what
it measured, and ``tail -f`` shows how it goes).

Options to limit examples per task, tasks and epochs make a small real run
possible on a CPU; the full benchmarks are the same code without limits.
"""
from __future__ import annotations

import gc
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from extractors.encoders import EncoderSpec, build_encoder
from extractors.kinds import MRE, get_kind
from extractors.training import TrainConfig, fit

from .evaluation import per_class, predict, score_after_task
from .catalog import DEFAULT_METHODS, PAPER_DEFAULTS
from .methods import ContinualLearner, MethodOptions, parse_method
from .report import write_report
from .streams import DEFAULT_DATA, TaskStream, load_stream

log = logging.getLogger(__name__)
PROGRESS_FILE = "progress.jsonl"


@dataclass
class BenchmarkConfig:
    kind: str = MRE.name  # a name in extractors.kinds: "mre" (IMRE) or "mner" (IMNER)
    variant: str = "sep10"  # IMRE split (sep10, sep5) or IMNER order (PLOM, POLM)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    n_tasks: int | None = None  # first N tasks only
    limit: int | None = None  # training examples per task (classes take turns)
    val_limit: int | None = None  # default: limit // 4
    test_limit: int | None = None  # cumulative test examples per task
    epochs: int = 3
    batch_size: int = 16
    lr: float | None = None  # encoder lr; None: the paper's (MRE 1e-5, MNER 3e-5)
    head_lr: float = 1e-3
    alpha: float | None = None  # None: the paper's (MRE 0.1, MNER 0.3)
    lam: float | None = None  # None: the paper's (MRE 1, MNER 0.1)
    per_class: int = 6
    ewc_lambda: float = 1000.0
    baseline_interaction: bool = False
    seed: int = 42
    device: str = "auto"
    data: Path = DEFAULT_DATA
    text: str = "minilm"
    vision: str = "dinov2-small"
    out_dir: Path = Path("var/continual")
    progress: bool = True

    def resolved(self) -> "BenchmarkConfig":
        """Paper defaults filled in for ``lr``/``alpha``/``lam``; ``val_limit`` from ``limit``."""
        d = PAPER_DEFAULTS[self.kind]
        out = BenchmarkConfig(**asdict(self))
        out.lr = self.lr if self.lr is not None else d["lr"]
        out.alpha = self.alpha if self.alpha is not None else d["alpha"]
        out.lam = self.lam if self.lam is not None else d["lam"]
        if self.val_limit is None and self.limit is not None:
            out.val_limit = max(8, self.limit // 4)
        out.data, out.out_dir = Path(self.data), Path(self.out_dir)
        return out

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, head_lr=self.head_lr,
                           seed=self.seed, device=self.device, progress=self.progress)


def run_method(method: str, stream: TaskStream, cfg: BenchmarkConfig, bar: tqdm | None = None,
               artifacts: Path | None = None) -> dict:
    """One method through the whole stream; returns its per-task record."""
    spec = parse_method(method, cfg.baseline_interaction)
    kind = get_kind(stream.kind)
    train_cfg = cfg.train_config()
    device = train_cfg.resolved_device()
    torch.manual_seed(cfg.seed)
    encoder, tokenizer = build_encoder(EncoderSpec(cfg.text, cfg.vision))
    adapter = kind.task(tokenizer)
    model = adapter.build(encoder, list(stream.base_labels))
    options = MethodOptions.for_kind(stream.kind, alpha=cfg.alpha, lam=cfg.lam, per_class=cfg.per_class,
                                     ewc_lambda=cfg.ewc_lambda, seed=cfg.seed, batch_size=cfg.batch_size,
                                     device=device)
    learner = ContinualLearner(spec, adapter, options)
    learner.prepare(model)
    tasks = []
    for k, task in enumerate(stream.tasks):
        start = time.perf_counter()
        task_train = learner.relabel(k, task.train, model)  # before growing: the model is the teacher
        torch.manual_seed(cfg.seed + 1000 + k)  # same new rows for every method
        kind.grow(model, task.new_labels)
        learner.begin_task(k, model)
        train = learner.training_data(task_train)
        # Without a validation pass a single epoch is kept as is; with more
        # epochs the best on task k's validation data is kept (old data is not
        # available for selection in a continual setting).
        val = task.val if cfg.epochs > 1 else []
        history = fit(adapter, model, train, val, train_cfg, loss_fn=learner.loss, on_step=learner.on_step)
        learner.after_fit(k, model, task_train)
        gold, pred = predict(adapter, model, task.test, device=device)
        scores = score_after_task(kind, gold, pred, [t.new_classes for t in stream.tasks[: k + 1]])
        validation = _validation_scores(adapter, model, stream, k, device)
        learner.end_task(k, model, task_train, task.new_classes)
        tasks.append({"task": k, "new_classes": task.new_classes, "A": scores["A"], "U": scores["U"],
                      "per_task_f1": scores["per_task"], "per_class": per_class(kind, gold, pred),
                      "n_labels": len(kind.labels(model)), "train_examples": len(train),
                      "test_examples": len(task.test), "best_epoch": history.best_epoch,
                      **validation,
                      "seconds": time.perf_counter() - start, **learner.task_summary(k)})
        _task_done(method, tasks[-1], artifacts)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(method=method, task=k, A=f"{scores['A']:.1f}")
    result = {"method": method, "spec": asdict(spec), "tasks": tasks,
              "mean_A": sum(t["A"] for t in tasks) / len(tasks), "final_A": tasks[-1]["A"],
              "mean_val_A": _mean([t["val_A"] for t in tasks]),
              "labels": kind.labels(model)}
    if artifacts is not None:
        result["artifacts"] = {k: str(v) for k, v in learner.save_artifacts(artifacts / method).items()}
    result["modulation"] = learner.modulator.records()
    del model, learner
    gc.collect()
    return result


def _validation_scores(adapter, model, stream: TaskStream, k: int, device) -> dict:
    """A_k and U_k on the cumulative *validation* set (every task's val split up to k).

    Test A_k is for reporting; design choices (methods, lambda, alpha, lr...)
    are to be made on these, so the test sets are not tuned on.
    """
    val = [ex for t in stream.tasks[: k + 1] for ex in t.val]
    if not val:
        return {"val_A": None, "val_U": None, "val_examples": 0}
    gold, pred = predict(adapter, model, val, device=device)
    scores = score_after_task(stream.kind, gold, pred, [t.new_classes for t in stream.tasks[: k + 1]])
    return {"val_A": scores["A"], "val_U": scores["U"], "val_examples": len(val)}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _task_done(method: str, task: dict, out: Path | None) -> None:
    """Log task k's scores and append them to ``progress.jsonl`` as soon as they exist."""
    brief = {"method": method, **{k: task[k] for k in ("task", "A", "U", "val_A", "per_task_f1", "best_epoch",
                                                        "seconds")}}
    log.info("benchmark task done", extra=brief)
    if out is not None:
        with (out / PROGRESS_FILE).open("a") as f:
            f.write(json.dumps(brief) + "\n")


def run_benchmark(cfg: BenchmarkConfig, on_method_done: Callable[[dict], None] | None = None) -> dict:
    """Run every method in ``cfg.methods`` on one stream and write the report."""
    cfg = cfg.resolved()
    for m in cfg.methods:  # fail before any training on a typo
        parse_method(m)
    stream = load_stream(cfg.kind, cfg.variant, data=cfg.data, n_tasks=cfg.n_tasks, limit=cfg.limit,
                         val_limit=cfg.val_limit, test_limit=cfg.test_limit, seed=cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PROGRESS_FILE).write_text("")  # this run's tasks only
    started = time.perf_counter()
    methods = {}
    with (tqdm(total=len(cfg.methods) * len(stream.tasks), desc=f"{stream.name}", disable=not cfg.progress) as bar,
          logging_redirect_tqdm()):  # log lines print above the bar, not through it
        for m in cfg.methods:
            methods[m] = run_method(m, stream, cfg, bar, artifacts=out)
            if on_method_done is not None:
                on_method_done(methods[m])
    result = {"benchmark": stream.name, "kind": stream.kind,
              "metric": get_kind(stream.kind).metric,
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "stream": [{"task": t.index, "new_classes": t.new_classes, "new_labels": t.new_labels,
                          "train": len(t.train), "val": len(t.val), "test": len(t.test)} for t in stream.tasks],
              "methods": methods, "seconds": time.perf_counter() - started}
    result["files"] = {k: str(v) for k, v in write_report(result, out).items()}
    return result


def summary(result: dict) -> dict:
    """The compact numbers (no per-step logs) for a benchmark record."""
    return {"benchmark": result["benchmark"], "metric": result["metric"], "config": result["config"],
            "stream": result["stream"], "seconds": result["seconds"],
            "methods": {m: {"A": [t["A"] for t in r["tasks"]], "U": [t["U"] for t in r["tasks"]],
                            "val_A": [t["val_A"] for t in r["tasks"]], "mean_val_A": r["mean_val_A"],
                            "mean_A": r["mean_A"], "final_A": r["final_A"],
                            "l_ad": [t["l_ad"] for t in r["tasks"]],
                            "gamma_mean": [t["gamma_mean"] for t in r["tasks"]]}
                        for m, r in result["methods"].items()}}
