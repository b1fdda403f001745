"""Detect newly emerged classes from labelled posts and turn them into tasks.

The supervised signal: posts with gold annotations arrive on their own stream
(a labelling tool publishing to ``posts.labeled``). They are ingested into the
:class:`~continual.labelled.LabelledStore` (offsets committed only after the
examples are on disk), then every relation or entity type the current model
does not know is counted; once a class has ``min_examples`` examples it is
proposed, together with the other ready classes of its kind, as one new task
in the :class:`~continual.task_queue.TaskQueue`, which the update DAG reads.
The graph's schema registry records when each class emerged and its state.

The labelled source, dead letters, stores and graph are passed in;
:mod:`pipeline.jobs.novelty` opens them from the configuration.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from time import monotonic

from extractors.kinds import get_kind
from extractors.store import ModelStore
from graph_store.base import GraphStore
from graph_store.schema import IDENTIFIER
from graph_store.schema_registry import record_classes
from mkg_common.clock import utc_iso
from pipeline.dead_letter import DeadLetter, DeadLetterSink
from pipeline.post import InvalidPost, parse_post
from pipeline.sources.base import Source

from .labelled import LabelledStore, examples_from_post
from .task_queue import TaskQueue

log = logging.getLogger(__name__)


@dataclass
class NoveltyDecision:
    """What one detect_novelty run found; JSON-serialisable for the DAG's XCom."""

    ingested_posts: int = 0
    new_examples: int = 0
    dead_lettered: int = 0
    tasks: list[dict] = field(default_factory=list)  # proposed now: id, kind, classes, counts
    emerging: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> class -> count (below threshold)
    rejected_names: list[str] = field(default_factory=list)  # labels that cannot be graph identifiers

    def as_dict(self) -> dict:
        return asdict(self)


def known_classes(models: ModelStore, kind: str) -> set[str]:
    """Relations (without ``None``) or entity types the current model of ``kind`` predicts."""
    version = models.current_version(kind)
    if version is None:
        return set()
    labels = models.config(kind, version)["labels"]
    return get_kind(kind).classes_of(labels)


def graph_type(kind: str, name: str) -> str:
    return get_kind(kind).graph_name(name)


def ingest_labelled(source: Source, dead_letters: DeadLetterSink, store: LabelledStore, batch_size: int,
                    idle_timeout_s: float = 10.0, max_records: int | None = None) -> tuple[int, int, int]:
    """Move labelled posts from ``source`` into the store; (posts, new examples, dead letters).

    The caller opens and closes ``source`` and ``dead_letters``.
    """
    posts = added = dead = 0
    last = monotonic()
    while not source.exhausted and (max_records is None or posts < max_records):
        records = source.poll(batch_size)
        if not records:
            if monotonic() - last > idle_timeout_s:
                break
            continue
        last = monotonic()
        parsed = []
        for rec in records:
            try:
                post = parse_post(rec.payload)
            except InvalidPost as exc:
                dead_letters.send(DeadLetter.of(rec, "labelled", exc.reason))
                dead += 1
                continue
            if post.annotations is None:
                dead_letters.send(DeadLetter.of(rec, "labelled", "labelled post has no annotations"))
                dead += 1
                continue
            parsed.append(post)
        added += store.add(ex for p in parsed for ex in examples_from_post(p, store.val_fraction))
        dead_letters.flush()
        source.commit(records)  # only after the examples are on disk
        posts += len(parsed)
    log.info("labelled posts ingested", extra={"posts": posts, "new_examples": added, "dead_lettered": dead})
    return posts, added, dead


def propose_tasks(c, store: LabelledStore, models: ModelStore, queue: TaskQueue, graph: GraphStore | None = None,
                  decision: NoveltyDecision | None = None) -> NoveltyDecision:
    """Propose tasks for classes that are new and ready, and record the schema in ``graph``.

    ``c``: the continual settings (``kinds``, ``min_examples``; the config's
    ``continual:`` section); ``models``: the extractor versions in use (with
    the shipped fallback where the worker has it), whose classes are known.
    """
    decision = decision or NoveltyDecision()
    rows: list[dict] = []
    now = utc_iso()
    for kind in c.kinds:
        known = known_classes(models, kind)
        counts = store.class_counts(kind)
        first = store.first_seen(kind)
        in_flight, refused = queue.classes_in_flight(kind), queue.refused_counts(kind)
        ready: dict[str, int] = {}
        for name, n in sorted(counts.items()):
            if not IDENTIFIER.match(graph_type(kind, name)):
                decision.rejected_names.append(name)
                log.warning("labelled class cannot be a graph identifier; ignored", extra={"kind": kind, "class_name": name})
                continue
            if name in known or name in in_flight:
                continue
            if n >= c.min_examples and n > refused.get(name, -1):
                ready[name] = n
            else:
                decision.emerging.setdefault(kind, {})[name] = n
        version = models.current_version(kind)
        for name in known:
            rows.append({"kind": kind, "name": name, "graph_type": graph_type(kind, name), "status": "learned",
                         "emerged_at": first.get(name), "now": now, "examples": counts.get(name, 0),
                         "model_version": version})
        for name, n in decision.emerging.get(kind, {}).items():
            rows.append({"kind": kind, "name": name, "graph_type": graph_type(kind, name), "status": "emerging",
                         "emerged_at": first.get(name), "now": now, "examples": n})
        if ready:
            task = queue.create(kind, list(ready), ready, base_version=version)
            decision.tasks.append({"id": task.id, "kind": kind, "classes": task.new_classes, "counts": ready,
                                   "base_version": version})
            log.info("new continual task proposed", extra={"task": task.id, "classes": task.new_classes})
            for name, n in ready.items():
                rows.append({"kind": kind, "name": name, "graph_type": graph_type(kind, name), "status": "proposed",
                             "emerged_at": first.get(name), "now": now, "examples": n, "task_id": task.id})
    if graph is not None and rows:
        record_classes(graph, rows)
    return decision
