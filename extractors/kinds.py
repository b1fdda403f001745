"""The registry of extraction task kinds: everything that differs between MRE and MNER.

A model kind is named by a short string that is stored on disk (model-store
folders, ``config.json["kind"]``, labelled examples, continual tasks):
``"mre"`` (relations between entity pairs) and ``"mner"`` (entity types of
word spans). Code that must treat the two differently asks the kind's entry
here instead of comparing the string, as spaCy's registries, timm's
``create_model`` and PyKEEN's resolvers map a name to what it stands for:
adding a kind is one new entry, not a hunt for ``if kind == ...``.

An entry knows its task class (:mod:`extractors.tasks`), how to read its
research data, its "nothing" label, where a model keeps its label list and
how that list grows, its per-class metric key, how examples name the classes
they teach, and which continual-learning components apply to it.

The task classes import torch; they are imported only when a task is built,
so reading the registry (the model store does) stays cheap.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterable, Sequence

from .datasets import NO_RELATION, OUTSIDE, NERExample, REExample, bio_labels, read_conll, read_re, tag_types


class UnknownKind(ValueError):
    """A kind name with no registry entry."""


class TaskKind(ABC):
    """One kind of extraction task; subclasses fill in the class attributes."""

    name: str  # the on-disk name
    benchmark: str  # its class-incremental benchmark (continual.streams)
    dataset: str  # the folder of its research data under ../shared/data
    no_label: str  # the label of "nothing": shared by every task, first in the model's label list
    label_attr: str  # the model attribute holding its label list
    per_class_key: str  # where evaluate(per_class=True) puts per-class P/R/F1
    metric: str  # what its F1 means, for reports
    logit_adjustment: bool  # one label per example: the label prior can be re-balanced (continual.balance)
    teacher_relabel: bool  # a task's data leaves old classes unlabelled (continual.relabel)
    no_label_examples: bool  # "nothing" comes as examples of its own (None pairs), not inside an example

    # -- models ----------------------------------------------------------------------
    @property
    @abstractmethod
    def task_class(self) -> type: ...

    def task(self, tokenizer, **kwargs):
        """The task adapter (batching, prediction, evaluation) for ``tokenizer``."""
        return self.task_class(tokenizer, self.name, **kwargs)

    def evaluate(self, task, model, examples, per_class: bool = False, **kwargs) -> dict:
        """The task's scores of ``model`` on ``examples``; ``per_class`` adds per-class P/R/F1 (with
        support) under :attr:`per_class_key`."""
        out, gold, pred = task.scores(model, examples, **kwargs)
        if per_class:
            out[self.per_class_key] = self.per_class(gold, pred)
        return out

    def labels(self, model) -> list[str]:
        """The model's output labels, in output order."""
        return list(getattr(model, self.label_attr))

    def graph_name(self, class_name: str) -> str:
        """How a class of this kind is named in the graph (a relationship type or an entity label)."""
        return class_name

    @abstractmethod
    def grow(self, model, labels: Sequence[str]) -> None:
        """Add output labels to ``model`` (old outputs keep their weights)."""

    @abstractmethod
    def new_labels(self, classes: Sequence[str]) -> list[str]:
        """The output labels that ``classes`` need."""

    @abstractmethod
    def classes_of(self, labels: Iterable[str]) -> set[str]:
        """The classes a label list stands for (without "nothing")."""

    # -- data ------------------------------------------------------------------------
    @abstractmethod
    def read(self, path: str | Path) -> list:
        """Examples from one research-data file."""

    @abstractmethod
    def example_from_dict(self, d: dict):
        """An example from its JSON form (extra keys are ignored)."""

    @abstractmethod
    def example_classes(self, example) -> set[str]:
        """The classes one example teaches (without "nothing")."""

    @abstractmethod
    def fit_label_space(self, examples: Sequence, classes: set[str]) -> list:
        """What a model knowing ``classes`` can learn from ``examples``."""

    # -- scores ----------------------------------------------------------------------
    @abstractmethod
    def restrict(self, labels: Sequence, keep: set[str]) -> list:
        """Gold or predicted labels with every class outside ``keep`` turned into "nothing"."""

    @abstractmethod
    def f1(self, gold: Sequence, pred: Sequence) -> float:
        """The kind's headline F1 (%)."""

    @abstractmethod
    def per_class(self, gold: Sequence, pred: Sequence) -> dict[str, dict[str, float]]:
        """P/R/F1 per class with its support (gold count) and predicted count."""

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"


class RelationKind(TaskKind):
    name = "mre"
    benchmark = "imre"
    dataset = "mnre"
    no_label = NO_RELATION
    label_attr = "labels"
    per_class_key = "per_relation"
    metric = "micro-F1 without None"
    logit_adjustment = True
    teacher_relabel = False
    no_label_examples = True

    @property
    def task_class(self) -> type:
        from .tasks import RETask

        return RETask

    def grow(self, model, labels: Sequence[str]) -> None:
        model.add_labels(list(labels))

    def new_labels(self, classes: Sequence[str]) -> list[str]:
        return list(classes)

    def classes_of(self, labels: Iterable[str]) -> set[str]:
        return set(labels) - {self.no_label}

    def read(self, path: str | Path) -> list[REExample]:
        return read_re(path)

    def example_from_dict(self, d: dict) -> REExample:
        return REExample(tuple(d["tokens"]), tuple(d["head"]), tuple(d["tail"]), d["relation"], d.get("image_id", ""))

    def example_classes(self, example: REExample) -> set[str]:
        return {example.relation} - {self.no_label}

    def fit_label_space(self, examples: Sequence[REExample], classes: set[str]) -> list[REExample]:
        return [ex for ex in examples if ex.relation == self.no_label or ex.relation in classes]

    def restrict(self, labels: Sequence[str], keep: set[str]) -> list[str]:
        return [label if label in keep else self.no_label for label in labels]

    def f1(self, gold: Sequence[str], pred: Sequence[str]) -> float:
        from .metrics import re_micro_prf

        return float(re_micro_prf(gold, pred, self.no_label)["f1"])

    def graph_name(self, class_name: str) -> str:
        from .schema import relation_type_of

        return relation_type_of(class_name)

    def per_class(self, gold: Sequence[str], pred: Sequence[str]) -> dict[str, dict[str, float]]:
        from .metrics import re_per_relation

        return re_per_relation(gold, pred, self.no_label)


class EntityKind(TaskKind):
    name = "mner"
    benchmark = "imner"
    dataset = "twitter2017"
    no_label = OUTSIDE
    label_attr = "tags"
    per_class_key = "per_type"
    metric = "entity-level F1 (seqeval)"
    logit_adjustment = False
    teacher_relabel = True
    no_label_examples = False

    @property
    def task_class(self) -> type:
        from .tasks import NERTask

        return NERTask

    def grow(self, model, labels: Sequence[str]) -> None:
        model.add_tags(list(labels))

    def new_labels(self, classes: Sequence[str]) -> list[str]:
        return bio_labels(classes)

    def classes_of(self, labels: Iterable[str]) -> set[str]:
        return tag_types(labels)

    def read(self, path: str | Path) -> list[NERExample]:
        return read_conll(path)

    def example_from_dict(self, d: dict) -> NERExample:
        return NERExample(tuple(d["tokens"]), tuple(d["tags"]), d.get("image_id", ""))

    def example_classes(self, example: NERExample) -> set[str]:
        return tag_types(example.tags)

    def fit_label_space(self, examples: Sequence[NERExample], classes: set[str]) -> list[NERExample]:
        return [NERExample(ex.tokens, tuple(self.restrict([ex.tags], classes)[0]), ex.image_id) for ex in examples]

    def restrict(self, labels: Sequence[Sequence[str]], keep: set[str]) -> list[list[str]]:
        return [[t if t != self.no_label and t[2:] in keep else self.no_label for t in seq] for seq in labels]

    def f1(self, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
        from .metrics import ner_entity_prf

        # A model that predicts none of the entities is an expected outcome in
        # continual learning (forgetting), not something to warn about: F1 is then 0.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ill-defined.*")
            return float(ner_entity_prf(gold, pred)["f1"])

    def per_class(self, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
        from .metrics import ner_per_type

        return ner_per_type(gold, pred)


MRE, MNER = RelationKind(), EntityKind()
_REGISTRY: dict[str, TaskKind] = {k.name: k for k in (MRE, MNER)}
KINDS: tuple[str, ...] = tuple(_REGISTRY)


def get_kind(name: str | TaskKind) -> TaskKind:
    """The registry entry of ``name`` (an entry passes through)."""
    if isinstance(name, TaskKind):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownKind(f"unknown model kind {name!r}; known kinds: {', '.join(KINDS)}") from None


def kind_of_benchmark(benchmark: str) -> TaskKind:
    """The kind a class-incremental benchmark (``imre``, ``imner``) is about."""
    for kind in _REGISTRY.values():
        if kind.benchmark == benchmark:
            return kind
    raise UnknownKind(f"unknown benchmark {benchmark!r}; known: {', '.join(k.benchmark for k in _REGISTRY.values())}")
