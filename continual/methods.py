"""Continual-learning methods as presets of a few composable parts.

Every method runs in the same harness (:mod:`continual.benchmark`) on the
same encoders and seeds; a method only decides what to train on, what to
add to the task loss, what to do to the gradients and what to keep when a
task ends:

==============  ===========================================================
``finetune``    train on each task's data only (lower bound)
``ewc``         + elastic weight consolidation
``replay``      + rehearsal memory, random exemplars
``replay_ewc``  replay and EWC together
``joint``       train on all data seen so far (upper bound)
``mspt``        shared-key interaction + attention distillation + gradient
                modulation + rehearsal memory with prototype selection
                + teacher relabelling (MNER) + logit adjustment (MRE)
==============  ===========================================================

MSPT ablations (the paper's Table 3) switch one component off each:
``mspt-no-interaction``, ``mspt-no-distillation``, ``mspt-no-modulation``,
``mspt-no-memory``; suffixes combine (``mspt-no-memory-no-modulation``).
Two components are ours, not the paper's. ``relabel``
(:mod:`continual.relabel`): for MNER the model as the last task left it tags
old types in the new task's sentences, whose labels leave them ``O`` (for MRE
it does nothing: relation pairs carry their own label). ``balance``
(:mod:`continual.balance`): for MRE, post-hoc logit adjustment from the label
prior of the last training run to the stream's (every task's own data so
far), against the bias toward the newest relations (for MNER it does
nothing). ``mspt-no-relabel-no-balance`` is the paper's
method, and ``<baseline>+<component>`` (e.g. ``replay+relabel``,
``replay_ewc+balance``) gives a component to a baseline, so its share of
MSPT's gain can be measured.

Baselines run the plain dual-stream model (``interaction_enabled=False``:
the top layers attend with their own keys only), as the paper's baselines
have no MSPT interaction; ``baseline_interaction=True`` gives them the key
bank too. Gamma (modality imbalance) is measured for every method, so the
Figure-4 plot can compare them; only MSPT acts on it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from extractors.kinds import get_kind

from .balance import balance_classifier, relation_counts
from .catalog import ADDABLE, BASELINES, COMPONENTS, METHODS, PAPER_DEFAULTS
from .distillation import AttentionDistiller
from .ewc import EWC
from .memory import RehearsalMemory, model_features
from .modulation import GradientModulator
from .objectives import forward_parts
from .relabel import relabel_with_teacher



@dataclass(frozen=True)
class MethodSpec:
    name: str
    interaction: bool = False
    memory: str | None = None  # None, "random" or "prototype"
    ewc: bool = False
    joint: bool = False
    distillation: bool = False
    modulation: bool = False
    relabel: bool = False
    balance: bool = False


_PRESETS = {
    "finetune": MethodSpec("finetune"),
    "ewc": MethodSpec("ewc", ewc=True),
    "replay": MethodSpec("replay", memory="random"),
    "replay_ewc": MethodSpec("replay_ewc", memory="random", ewc=True),
    "joint": MethodSpec("joint", joint=True),
    "mspt": MethodSpec("mspt", interaction=True, memory="prototype", distillation=True, modulation=True,
                     relabel=True, balance=True),
}


def parse_method(name: str, baseline_interaction: bool = False) -> MethodSpec:
    """A preset name, ``mspt`` followed by ``-no-<component>`` suffixes, or ``<baseline>+<component>``."""
    name = name.strip()
    base, *added = name.split("+")
    if added:
        # a baseline with some of MSPT's own components: how much of MSPT's gain they carry alone
        if base not in BASELINES or not set(added) <= set(ADDABLE):
            raise ValueError(f"unknown method {name!r}: use <baseline>+<component> with a baseline from "
                             f"{', '.join(BASELINES)} and components from {', '.join(ADDABLE)}")
        return replace(parse_method(base, baseline_interaction), name=name, **{c: True for c in added})
    if name in _PRESETS:
        spec = _PRESETS[name]
        return replace(spec, interaction=True) if baseline_interaction and name in BASELINES else spec
    if name.startswith("mspt-no-"):
        spec = _PRESETS["mspt"]
        for part in name[len("mspt-no-"):].split("-no-"):
            if part not in COMPONENTS:
                raise ValueError(f"unknown MSPT component {part!r} in {name!r}; components: {', '.join(COMPONENTS)}")
            spec = replace(spec, **{part: None if part == "memory" else False})
        return replace(spec, name=name)
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}, "
                     f"mspt-no-<{'|'.join(COMPONENTS)}> or <baseline>+<{'|'.join(ADDABLE)}>")


@dataclass
class MethodOptions:
    alpha: float = 0.1  # modulation strength
    lam: float = 1.0  # distillation weight
    per_class: int = 6  # exemplars per class
    ewc_lambda: float = 1000.0
    tau: float = 1.0  # logit-adjustment strength (balance)
    seed: int = 42
    batch_size: int = 16
    device: str = "cpu"

    @classmethod
    def for_kind(cls, kind: str, **overrides) -> "MethodOptions":
        d = PAPER_DEFAULTS[kind]
        base = {"alpha": d["alpha"], "lam": d["lam"]}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class LearnerState:
    """What a learner carries from the tasks it has learned to the next one.

    The production update keeps it beside each model version (``memory.json``,
    ``continual.json``) and resumes a fresh learner from it, so a learner's
    internals stay its own business.
    """

    task_index: int  # the last task learned
    known: list[str]  # the classes learned so far
    memory: RehearsalMemory | None = None  # exemplars of the known classes
    G: dict[str, float] | None = None  # the modulation average the last task ended with
    label_counts: dict[str, int] = field(default_factory=dict)  # labels of every task's own data (balance)


@dataclass
class ContinualLearner:
    """One method's state across a stream: memory, EWC, old model, modulator, logs."""

    spec: MethodSpec
    task_adapter: object  # extractors.tasks.RETask / NERTask
    options: MethodOptions = field(default_factory=MethodOptions)

    def __post_init__(self) -> None:
        self.kind = get_kind(self.task_adapter.kind)
        kind = self.kind.name
        o = self.options
        self.memory = RehearsalMemory(kind, o.per_class, self.spec.memory, o.seed) if self.spec.memory else None
        self.ewc = EWC(o.ewc_lambda) if self.spec.ewc else None
        self.distiller = AttentionDistiller(o.lam) if self.spec.distillation else None
        self.modulator = GradientModulator(o.alpha, apply=self.spec.modulation)
        self.seen_train: list = []
        self.known: list[str] = []  # classes of the tasks before the current one
        self.steps: list[dict] = []
        self.relabelled: dict[int, int] = {}  # task -> spans the teacher added
        self.adjustment: dict[int, list[float]] = {}  # task -> logit offsets set after it (balance)
        self.stream_counts: Counter = Counter()  # MRE labels in every past task's own data (balance's target)
        self.task = 0

    def prepare(self, model: nn.Module) -> None:
        model.encoder.interaction_enabled = self.spec.interaction

    def resume(self, state: LearnerState, model: nn.Module) -> None:
        """Continue after ``state``'s task, with ``model`` as that task left it: it becomes the
        distillation teacher, and the memory, G and label counts carry over."""
        self.task = state.task_index
        if self.distiller is not None:
            self.distiller.snapshot(model)
        if self.memory is not None and state.memory is not None:
            self.memory.exemplars.update(state.memory.exemplars)
            self.memory.task_of.update(state.memory.task_of)
        if state.G:
            self.modulator.averages[state.task_index] = dict(state.G)
        self.known = list(state.known)
        self.stream_counts.update(state.label_counts)

    def state(self, k: int) -> LearnerState:
        """What the next task needs after task ``k`` (call after :meth:`end_task`)."""
        return LearnerState(k, list(self.known), self.memory, self.modulator.averages.get(k),
                            dict(self.stream_counts))

    def begin_task(self, k: int, model: nn.Module) -> None:
        self.task = k
        self.modulator.begin_task(k, model)
        if self.distiller is not None:
            self.distiller.task = k
        if self.balances:
            # choose the best epoch on the raw logits; the new offsets come in after_fit
            model.classifier.set_adjustment(None)

    @property
    def balances(self) -> bool:
        return self.spec.balance and self.kind.logit_adjustment

    def relabel(self, k: int, train: Sequence, model: nn.Module) -> list:
        """Task k's examples with the teacher's spans of old types filled in (MNER, ``relabel`` on).

        Call it before the model grows for task k: ``model`` is then the
        model as task k-1 left it. Otherwise the examples come back as given.
        """
        if not (self.spec.relabel and self.kind.teacher_relabel and self.known):
            return list(train)
        train, self.relabelled[k] = relabel_with_teacher(self.task_adapter, model, train, self.known,
                                                         self.options.device)
        return train

    def training_data(self, train: Sequence) -> list:
        """What task k trains on: its data, plus the memory or everything seen before."""
        if self.spec.joint:
            return [*self.seen_train, *train]
        if self.memory is not None:
            return [*train, *self.memory.examples()]
        return list(train)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """The ``loss_fn`` for :func:`extractors.training.fit`."""
        parts = forward_parts(model, batch)
        self.modulator.observe(parts.text_logits, parts.vision_logits, parts.gold)
        total = parts.loss
        log = {"task": self.task, "task_loss": float(parts.loss.detach())}
        if self.distiller is not None:
            l_ad = self.distiller.loss(batch, parts.stream)
            total = total + self.distiller.lam * l_ad
            log["l_ad"] = float(l_ad.detach())
        if self.ewc is not None and self.ewc.active:
            pen = self.ewc.penalty(model)
            total = total + pen
            log["ewc"] = float(pen.detach())
        self.steps.append(log)
        return total

    def on_step(self, model: nn.Module) -> None:
        """The ``on_step`` hook: gradient modulation (logs only when switched off)."""
        self.modulator.on_step(model)

    def after_fit(self, k: int, model: nn.Module, train: Sequence) -> None:
        """Between training on task k and using the model: the logit adjustment (``balance``).

        ``train`` is the task's own data. The model learned the label prior of
        everything the run trained on (with the memory as it was during
        training); it should serve the stream's: every task's own data so far.
        """
        if self.balances:
            trained = relation_counts(self.training_data(train))
            offsets = balance_classifier(model, trained, self.stream_counts + relation_counts(train),
                                         self.options.tau)
            self.adjustment[k] = [round(float(x), 4) for x in offsets]

    def end_task(self, k: int, model: nn.Module, train: Sequence, new_classes: Sequence[str]) -> None:
        """Keep what the next task needs: exemplars, Fisher, the frozen teacher, G."""
        o = self.options
        if self.memory is not None:
            feats = (model_features(self.task_adapter, model, device=o.device)
                     if self.memory.strategy == "prototype" else None)
            self.memory.add_task(k, new_classes, train, feats)
        if self.ewc is not None:
            self.ewc.consolidate(self.task_adapter, model, self.training_data(train), o.batch_size, o.device)
        if self.distiller is not None:
            self.distiller.snapshot(model)
        self.modulator.end_task()
        self.known.extend(c for c in new_classes if c not in self.known)
        if self.kind.logit_adjustment:
            self.stream_counts.update(relation_counts(train))
        if self.spec.joint:
            self.seen_train.extend(train)

    def task_summary(self, k: int) -> dict:
        steps = [s for s in self.steps if s["task"] == k]
        mod = [r for r in self.modulator.history if r.task == k]

        def mean(xs):
            xs = list(xs)
            return sum(xs) / len(xs) if xs else None

        return {"steps": len(steps), "task_loss": mean(s["task_loss"] for s in steps),
                "l_ad": mean(s["l_ad"] for s in steps if "l_ad" in s),
                "ewc_penalty": mean(s["ewc"] for s in steps if "ewc" in s),
                "gamma_mean": mean(r.gamma for r in mod),
                "coeff_text_mean": mean(r.coeff_text for r in mod),
                "applied_text_mean": mean(r.applied_text for r in mod),
                "applied_vision_mean": mean(r.applied_vision for r in mod),
                "memory_exemplars": len(self.memory) if self.memory is not None else 0,
                "relabelled_spans": self.relabelled.get(k, 0),
                "adjustment": self.adjustment.get(k)}

    def save_artifacts(self, folder: Path) -> dict[str, Path]:
        """memory.json and modulation.csv (gamma per step) for this method."""
        import csv

        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        if self.memory is not None:
            paths["memory"] = self.memory.save(folder / "memory.json")
        records = self.modulator.records()
        if records:
            path = folder / "modulation.csv"
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(records[0]))
                w.writeheader()
                w.writerows(records)
            paths["modulation"] = path
        return paths
