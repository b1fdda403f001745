"""Novelty detection from the configuration: the detect_novelty DAG, ``mkg continual detect``, ``mkg candidates``.

The supervised signal (:func:`detect_novelty`) and the unsupervised one
(:func:`discover_from_config`) read the configuration and open the labelled
source, dead letters, stores and graph here, then hand them to
:mod:`continual.novelty` and :mod:`continual.candidates`.
"""
from __future__ import annotations

from datetime import timedelta

from continual import novelty
from continual.candidates.discovery import run_discovery
from continual.labelled import LabelledStore
from continual.task_queue import TaskQueue
from extractors.store import ModelStore
from graph_store.base import GraphStore
from mkg_common.clock import utc_now

from ..config import Config
from ..runtime import make_dead_letters, make_labelled_source, open_graph


def labelled_store_of(cfg: Config) -> LabelledStore:
    return LabelledStore(cfg.continual.labelled_dir, cfg.continual.val_fraction)


def model_store_of(cfg: Config) -> ModelStore:
    """The extractor versions the worker uses: with ``extractor.kind: auto``, the shipped ones
    while none is promoted (the classes they know are not new)."""
    return ModelStore(cfg.extractor.models_dir, shipped=cfg.extractor.kind == "auto")


def detect_novelty(cfg: Config, graph: GraphStore | None = None, ingest: bool = True) -> novelty.NoveltyDecision:
    """Ingest labelled posts, propose tasks for classes that are new and ready, record the schema."""
    store = labelled_store_of(cfg)
    decision = novelty.NoveltyDecision()
    if ingest:
        source = make_labelled_source(cfg)
        if source is not None:
            dead_letters = make_dead_letters(cfg)
            try:
                decision.ingested_posts, decision.new_examples, decision.dead_lettered = novelty.ingest_labelled(
                    source, dead_letters, store, cfg.worker.batch_size)
            finally:
                source.close()
                dead_letters.close()
    return novelty.propose_tasks(cfg.continual, store, model_store_of(cfg), TaskQueue(cfg.continual.tasks_dir),
                                 graph, decision)


def discover_from_config(cfg: Config, window_hours: int = 24) -> dict:
    """The hourly ``detect_novelty`` DAG's call: the last ``window_hours`` of observations, summary as a dict."""
    end = utc_now()
    graph = open_graph(cfg)
    try:
        report = run_discovery(cfg.novelty.observations_dir, end - timedelta(hours=window_hours), end, graph,
                               labelled_store_of(cfg), cfg.novelty, now=end)
    finally:
        graph.close()
    return report.as_dict()
