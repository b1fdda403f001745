"""One continual update in production: a proposed task -> a gated new model version.

The same parts as the benchmark harness (:mod:`continual.benchmark`), applied
to the live model store instead of a research stream:

1. load the current version of the task's kind (or build a fresh model when
   there is none yet: the first task), its rehearsal memory and the modulation
   average G it ended with, and (MRE) the label counts of every past task's
   data, the target of the logit adjustment; the loaded model is also the
   frozen teacher for attention distillation;
2. grow the output layer by the task's classes, train on the task's labelled
   examples plus the memory (:func:`extractors.training.fit`, checkpointed per
   epoch under ``work_dir/<task id>`` so a failed run resumes);
3. score the current and the candidate model on the same validation examples:
   old classes before/after, new classes after, all classes (A_k);
4. save the candidate as a new version (with memory.json and continual.json),
   and promote it only if the :mod:`continual.gate` passes. Workers pick a
   promoted version up between batches; a refused or failed update leaves the
   current pointer, and therefore the graph, untouched.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from extractors.encoders import EncoderSpec, build_encoder
from extractors.schema import NO_RELATION
from extractors.store import ModelStore
from extractors.tasks import NERTask, RETask
from extractors.training import TrainConfig, fit, seed_everything

from .balance import relation_counts
from .benchmark import grow
from .catalog import PAPER_DEFAULTS
from .evaluation import f1_all, f1_on_classes, predict
from .gate import GatePolicy, decide
from .labelled import LabelledStore
from .memory import RehearsalMemory
from .methods import ContinualLearner, MethodOptions, parse_method
from .novelty import graph_type, known_classes
from .task_queue import ContinualTask, TaskQueue

log = logging.getLogger(__name__)

CONTINUAL_FILE = "continual.json"  # task index, modulation average G and MRE label counts of a version


class InjectedFailure(RuntimeError):
    """Raised by ``fail_after_epoch`` to test that a crash mid-training changes nothing."""


@dataclass
class _Start:
    model: object
    adapter: object
    spec: EncoderSpec
    version: str | None
    old_classes: list[str]
    task_index: int  # the index of the task being learned now
    memory: RehearsalMemory | None
    previous_g: dict[str, float] | None
    label_counts: dict[str, int]  # MRE labels of every past task's own data (the balance target)


def _new_labels(kind: str, classes: list[str]) -> list[str]:
    return list(classes) if kind == "mre" else [f"{p}-{c}" for c in classes for p in ("B", "I")]


def _fit_label_space(kind: str, examples: list, classes: set[str]) -> list:
    """Keep what the model can learn: MRE examples of known labels; MNER tags of known types (others -> O)."""
    if kind == "mre":
        return [ex for ex in examples if ex.relation == NO_RELATION or ex.relation in classes]
    from extractors.datasets import NERExample

    return [NERExample(ex.tokens, tuple(t if t == "O" or t[2:] in classes else "O" for t in ex.tags), ex.image_id)
            for ex in examples]


def _start(kind: str, models: ModelStore, labelled: LabelledStore, cfg, device: str) -> _Start:
    c = cfg.continual
    version = models.current_version(kind)
    if version is None:
        seed_everything(c.seed)  # the first model's new layers come from the seed, not from the process
        spec = EncoderSpec()
        encoder, tokenizer = build_encoder(spec)
        adapter = RETask(tokenizer) if kind == "mre" else NERTask(tokenizer)
        return _Start(adapter.build(encoder, [NO_RELATION] if kind == "mre" else ["O"]), adapter, spec, None, [], 0,
                      None, None, {})
    model, adapter, mcfg = models.load(kind, version, device)
    folder = models.version_dir(kind, version)
    state = json.loads((folder / CONTINUAL_FILE).read_text()) if (folder / CONTINUAL_FILE).exists() else {}
    old = sorted(known_classes(models, kind))
    if (folder / "memory.json").exists():
        memory = RehearsalMemory.load(folder)
    else:  # a version trained outside the continual loop (`mkg train`): draw exemplars from labelled data
        memory = RehearsalMemory(kind, c.per_class, "random", c.seed)
        memory.add_task(state.get("task_index", 0), old, labelled.examples(kind, "train", old))
    counts = state.get("label_counts")
    if counts is None and kind == "mre":  # a version from outside the loop, or from before counts were kept
        counts = relation_counts(labelled.examples(kind, "train", old, with_none_from=old))
    return _Start(model, adapter, EncoderSpec(**mcfg["encoder"]), version, old, state.get("task_index", 0) + 1,
                  memory, state.get("G"), dict(counts or {}))


def _fingerprint(examples: list) -> str:
    h = hashlib.sha256()
    for ex in sorted(map(repr, examples)):
        h.update(ex.encode())
    return h.hexdigest()


def run_update(cfg, task_id: str | None = None, graph=None, fail_after_epoch: int | None = None) -> dict:
    """Run the task ``task_id`` (default: the oldest open one); returns a JSON-able report."""
    c = cfg.continual
    queue = TaskQueue(c.tasks_dir)
    task = queue.get(task_id) if task_id else queue.next_open()
    if task is None:
        return {"status": "idle", "reason": "no open continual task"}
    if task.status in ("promoted", "refused"):
        return {"status": task.status, "task": task.id, **task.result, "reason": "already decided"}
    queue.set_status(task, "training", note="update started")
    try:
        report = _train_and_gate(cfg, task, queue, graph, fail_after_epoch)
    except Exception as exc:
        queue.set_status(task, "failed", note=f"{type(exc).__name__}: {exc}", error=f"{type(exc).__name__}: {exc}")
        log.exception("continual update failed; the current model stays", extra={"task": task.id})
        raise
    return report


def _train_and_gate(cfg, task: ContinualTask, queue: TaskQueue, graph, fail_after_epoch: int | None) -> dict:
    c = cfg.continual
    kind = task.kind
    started = time.perf_counter()
    # extractor.kind auto: a store with no promoted version starts from the shipped one (what the worker uses)
    models = ModelStore(cfg.extractor.models_dir, shipped=cfg.extractor.kind == "auto")
    labelled = LabelledStore(c.labelled_dir, c.val_fraction)
    train_cfg = TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr or PAPER_DEFAULTS[kind]["lr"],
                            head_lr=c.head_lr, seed=c.seed, device=c.device, progress=True)
    device = train_cfg.resolved_device()
    s = _start(kind, models, labelled, cfg, device)
    new = [x for x in task.new_classes if x not in s.old_classes]
    if not new:
        queue.set_status(task, "refused", note="every class is already learned", reasons=["already learned"])
        return {"status": "refused", "task": task.id, "reasons": ["every class is already learned"]}
    seen = set(s.old_classes) | set(new)
    val_all = _fit_label_space(kind, labelled.examples(kind, "val", sorted(seen), with_none_from=sorted(seen)), seen)
    old_before = None
    if s.version is not None and s.old_classes:
        gold, pred = predict(s.adapter, s.model, val_all, device=device)
        old_before = f1_on_classes(kind, gold, pred, s.old_classes)

    spec = parse_method(c.method)
    options = MethodOptions.for_kind(kind, per_class=c.per_class, seed=c.seed, batch_size=c.batch_size, device=device)
    learner = ContinualLearner(spec, s.adapter, options)
    learner.prepare(s.model)
    if s.version is not None:
        learner.task = s.task_index - 1
        if learner.distiller is not None:
            learner.distiller.snapshot(s.model)  # the current model is the teacher
        if learner.memory is not None and s.memory is not None:
            learner.memory.exemplars.update(s.memory.exemplars)
            learner.memory.task_of.update(s.memory.task_of)
        if s.previous_g:
            learner.modulator.averages[s.task_index - 1] = s.previous_g
        learner.known = list(s.old_classes)
        learner.stream_counts.update(s.label_counts)
    task_train = _fit_label_space(kind, labelled.examples(kind, "train", new, with_none_from=new), seen)
    task_train = learner.relabel(s.task_index, task_train, s.model)  # before growing: the model is the teacher
    torch.manual_seed(c.seed + 1000 + s.task_index)
    grow(s.model, _new_labels(kind, new))
    learner.begin_task(s.task_index, s.model)
    task_val = _fit_label_space(kind, labelled.examples(kind, "val", new, with_none_from=new), seen)
    if not task_train:
        raise ValueError(f"task {task.id}: no labelled training examples for {new}")
    train = learner.training_data(task_train)
    work = Path(c.work_dir) / task.id
    resumed = (work / "checkpoint.pt").exists()  # a failed run of this task left its last epoch
    log.info("continual update training", extra={"task": task.id, "classes": new, "base": s.version,
                                                 "train": len(train), "val": len(task_val), "method": spec.name,
                                                 "resumed": resumed,
                                                 "relabelled_spans": learner.relabelled.get(s.task_index, 0)})
    history = fit(s.adapter, s.model, train, task_val, train_cfg, checkpoint_dir=work, resume=True,
                  loss_fn=learner.loss, on_step=learner.on_step, stop_after_epoch=fail_after_epoch)
    if fail_after_epoch is not None and fail_after_epoch < c.epochs:
        raise InjectedFailure(f"injected failure after epoch {fail_after_epoch}")
    learner.after_fit(s.task_index, s.model, task_train)

    gold, pred = predict(s.adapter, s.model, val_all, device=device)
    old_after = f1_on_classes(kind, gold, pred, s.old_classes) if s.old_classes else None
    new_after = f1_on_classes(kind, gold, pred, new)
    gate = decide(GatePolicy(c.gate_max_old_drop, c.gate_min_new_f1), old_before, old_after, new_after)
    learner.end_task(s.task_index, s.model, task_train, new)
    metrics = {"task_id": task.id, "A": f1_all(kind, gold, pred), "U": new_after, "old_before": old_before,
               "old_after": old_after, "gate": gate.as_dict(), "train_examples": len(train),
               "val_examples": len(val_all), "best_epoch": history.best_epoch, "resumed": resumed,
               "memory": learner.memory.counts() if learner.memory is not None else {},
               "relabelled_spans": learner.relabelled.get(s.task_index, 0),
               "method": spec.name, "seconds": time.perf_counter() - started}
    version = models.save(kind, s.model, s.spec, metrics=metrics, fingerprint=_fingerprint(train),
                          train_config={**train_cfg.__dict__, "method": spec.name, "task": task.id}, parent=s.version)
    folder = models.version_dir(kind, version)
    if learner.memory is not None:
        learner.memory.save(folder)
    (folder / CONTINUAL_FILE).write_text(json.dumps(
        {"task_index": s.task_index, "task_id": task.id, "classes": new,
         "G": learner.modulator.averages.get(s.task_index), "label_counts": dict(learner.stream_counts)}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    result = {"version": version, "base_version": s.version, **{k: v for k, v in metrics.items() if k != "task_id"}}
    if gate.passed:
        models.promote(kind, version)
        queue.set_status(task, "promoted", note=f"promoted {version}", **result)
    else:
        queue.set_status(task, "refused", note="; ".join(gate.reasons), **result)
    log.info("continual update decided", extra={"task": task.id, "version": version, "promoted": gate.passed,
                                                "reasons": gate.reasons})
    if graph is not None:
        from graph_store.schema_registry import record_classes

        from mkg_common.clock import utc_iso

        now, first = utc_iso(), labelled.first_seen(kind)
        record_classes(graph, [{"kind": kind, "name": n, "graph_type": graph_type(kind, n),
                                "status": "learned" if gate.passed else "refused", "emerged_at": first.get(n),
                                "now": now, "task_id": task.id, "model_version": version if gate.passed else None}
                               for n in new])
    return {"status": "promoted" if gate.passed else "refused", "task": task.id, **result}
