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
4. publish the candidate as a new version in one step (weights, config,
   metrics with per-class P/R/F1, memory.json and continual.json appear
   together, :meth:`extractors.store.ModelStore.save`), then promote it only
   if the :mod:`continual.gate` passes. Workers pick a promoted version up
   between batches; a refused or failed update leaves the current pointer,
   and therefore the graph, untouched.

It shares the learner and the scores with the research harness
(:mod:`continual.benchmark`) but not the harness itself; what differs
between MRE and MNER comes from :mod:`extractors.kinds`.
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
from extractors.kinds import get_kind
from extractors.store import ModelStore
from extractors.training import TrainConfig, fit, seed_everything

from .balance import relation_counts
from .catalog import PAPER_DEFAULTS
from .evaluation import f1_all, f1_on_classes, per_class, predict
from .gate import GatePolicy, decide
from .labelled import LabelledStore
from .memory import MEMORY_FILE, RehearsalMemory
from .methods import ContinualLearner, LearnerState, MethodOptions, parse_method
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
    state: LearnerState | None  # what the learner of the current version kept; None for the first task


def _start(kind: str, models: ModelStore, labelled: LabelledStore, cfg, device: str) -> _Start:
    c = cfg.continual
    k = get_kind(kind)
    version = models.current_version(kind)
    if version is None:
        seed_everything(c.seed)  # the first model's new layers come from the seed, not from the process
        spec = EncoderSpec()
        encoder, tokenizer = build_encoder(spec)
        adapter = k.task(tokenizer)
        return _Start(adapter.build(encoder, [k.no_label]), adapter, spec, None, [], 0, None)
    model, adapter, mcfg = models.load(kind, version, device)
    folder = models.version_dir(kind, version)
    record = json.loads((folder / CONTINUAL_FILE).read_text()) if (folder / CONTINUAL_FILE).exists() else {}
    old = sorted(known_classes(models, kind))
    if (folder / MEMORY_FILE).exists():
        memory = RehearsalMemory.load(folder)
    else:  # a version trained outside the continual loop (`mkg train`): draw exemplars from labelled data
        memory = RehearsalMemory(kind, c.per_class, "random", c.seed)
        memory.add_task(record.get("task_index", 0), old, labelled.examples(kind, "train", old))
    counts = record.get("label_counts")
    if counts is None and k.logit_adjustment:  # a version from outside the loop, or from before counts were kept
        counts = relation_counts(labelled.examples(kind, "train", old, with_none_from=old))
    state = LearnerState(record.get("task_index", 0), old, memory, record.get("G"), dict(counts or {}))
    return _Start(model, adapter, EncoderSpec(**mcfg["encoder"]), version, old, state.task_index + 1, state)


def version_files(state: LearnerState, task_id: str, classes: list[str]) -> dict[str, dict]:
    """The files a continual version keeps beside its weights, for the next update to resume from."""
    files = {CONTINUAL_FILE: {"task_index": state.task_index, "task_id": task_id, "classes": classes,
                              "G": state.G, "label_counts": state.label_counts}}
    if state.memory is not None:
        files[MEMORY_FILE] = state.memory.to_dict()
    return files


def publish(models: ModelStore, kind: str, model, spec: EncoderSpec, *, metrics: dict, fingerprint: str,
            train_config: dict, parent: str | None, files: dict, promote: bool) -> str:
    """Save the version with every file it needs in one step, then (if ``promote``) move ``current``
    to it: a crash at any point leaves the store with no new version or a complete one."""
    version = models.save(kind, model, spec, metrics=metrics, fingerprint=fingerprint, train_config=train_config,
                          parent=parent, files=files)
    if promote:
        models.promote(kind, version)
    return version


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
    k = get_kind(kind)
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
    val_all = k.fit_label_space(labelled.examples(kind, "val", sorted(seen), with_none_from=sorted(seen)), seen)
    old_before = per_class_before = None
    if s.version is not None and s.old_classes:
        gold, pred = predict(s.adapter, s.model, val_all, device=device)
        old_before = f1_on_classes(kind, gold, pred, s.old_classes)
        per_class_before = per_class(kind, gold, pred)

    spec = parse_method(c.method)
    options = MethodOptions.for_kind(kind, per_class=c.per_class, seed=c.seed, batch_size=c.batch_size, device=device)
    learner = ContinualLearner(spec, s.adapter, options)
    learner.prepare(s.model)
    if s.state is not None:
        learner.resume(s.state, s.model)  # the current model is the teacher
    task_train = k.fit_label_space(labelled.examples(kind, "train", new, with_none_from=new), seen)
    task_train = learner.relabel(s.task_index, task_train, s.model)  # before growing: the model is the teacher
    torch.manual_seed(c.seed + 1000 + s.task_index)
    k.grow(s.model, k.new_labels(new))
    learner.begin_task(s.task_index, s.model)
    task_val = k.fit_label_space(labelled.examples(kind, "val", new, with_none_from=new), seen)
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
               # P/R/F1 and support per relation / entity type on the validation examples, as `mkg evaluate`
               k.per_class_key: per_class(kind, gold, pred), f"{k.per_class_key}_before": per_class_before,
               "memory": learner.memory.counts() if learner.memory is not None else {},
               "relabelled_spans": learner.relabelled.get(s.task_index, 0),
               "method": spec.name, "seconds": time.perf_counter() - started}
    version = publish(models, kind, s.model, s.spec, metrics=metrics, fingerprint=_fingerprint(train),
                      train_config={**train_cfg.__dict__, "method": spec.name, "task": task.id}, parent=s.version,
                      files=version_files(learner.state(s.task_index), task.id, new), promote=gate.passed)
    shutil.rmtree(work, ignore_errors=True)
    result = {"version": version, "base_version": s.version,
              **{key: value for key, value in metrics.items() if key != "task_id"}}
    if gate.passed:
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
