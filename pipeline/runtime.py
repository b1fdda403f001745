"""Build the worker's parts from a :class:`Config` (one place for wiring)."""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from extractors.base import Extractor
from extractors.kinds import KINDS
from graph_store.base import GraphStore

from .config import Config
from .dead_letter import DeadLetterSink, FileDeadLetterSink, KafkaDeadLetterSink
from .images import ImagePolicy
from .observations import ObservationSink
from .post import Post
from .sources.base import Source
from .worker import Worker

log = logging.getLogger(__name__)


def open_graph(cfg: Config) -> GraphStore:
    g = cfg.graph
    if g.backend == "neo4j":
        from graph_store.neo4j_backend import Neo4jGraphStore

        password = g.neo4j_password.get_secret_value() if g.neo4j_password else None
        return Neo4jGraphStore(g.neo4j_uri, g.neo4j_user, password, g.neo4j_database)
    from graph_store.embedded import EmbeddedGraphStore

    return EmbeddedGraphStore(g.embedded_dir)


@contextmanager
def graph_for_job(cfg: Config, graph: GraphStore | None = None) -> Iterator[GraphStore]:
    """``graph`` as given (left open), or the configured one with its schema ensured, closed afterwards:
    what a batch job (completion, resolution) runs on."""
    if graph is not None:
        yield graph
        return
    own = open_graph(cfg)
    try:
        own.ensure_schema()
        yield own
    finally:
        own.close()


def make_extractor(cfg: Config) -> Extractor:
    ex = cfg.extractor
    if ex.kind == "gold":
        from extractors.gold import GoldExtractor

        return GoldExtractor()
    if ex.kind in ("auto", "multimodal"):
        from extractors.store import ModelStore

        # auto: a kind with no promoted version in the store uses the version shipped in the package
        shipped = ex.kind == "auto"
        store = ModelStore(ex.models_dir, shipped=shipped)
        ready = all(store.current_version(kind) for kind in KINDS)
        if ready or ex.kind == "multimodal":
            from extractors.multimodal import MultimodalExtractor

            nov = cfg.novelty
            return MultimodalExtractor(ex.models_dir, ex.relation_threshold, ex.device, batch_size=ex.batch_size,
                                       precision=ex.precision, span_threshold=nov.span_threshold,
                                       max_uncertain_per_post=nov.max_per_post if nov.enabled else 0,
                                       shipped=shipped, normalise=ex.normalise_text,
                                       calibration=fact_calibration(ex.calibration),
                                       target_precision=ex.target_precision, schema_rules=ex.schema_rules)
        log.warning("no trained or shipped multimodal models; using the spaCy baseline",
                    extra={"models_dir": str(ex.models_dir)})
    from extractors.spacy_ner import SpacyExtractor

    return SpacyExtractor(ex.spacy_model)


def fact_calibration(setting: str) -> Path | None:
    """The fact model folder ``extractor.calibration`` names: the shipped one for ``auto``, none for ``off``."""
    if setting == "off":
        return None
    if setting == "auto":
        from extractors.fact_calibration import SHIPPED_FACTS

        return SHIPPED_FACTS if SHIPPED_FACTS.exists() else None
    path = Path(setting)
    if not path.exists():
        raise FileNotFoundError(f"extractor.calibration: {path} does not exist")
    return path


def make_source(cfg: Config, paths: Sequence[Path] | None = None, run_key: str = "") -> Source:
    """The configured stream, or archive files (``paths``) for backfill.

    A backfill's checkpoint is keyed by its files and ``run_key``: the same
    run resumes where it stopped, a new key (e.g. a re-extraction with a newly
    promoted model) reads the files again.
    """
    from .sources.files import FileSource

    if paths:
        return FileSource(paths, checkpoint=_checkpoint(cfg, "backfill", paths, run_key))
    if cfg.source.kind == "kafka":
        from .sources.kafka import KafkaSource

        return KafkaSource(cfg.kafka, cfg.worker.batch_size)
    return FileSource([cfg.source.path], checkpoint=_checkpoint(cfg, "embedded", [cfg.source.path]),
                      follow=cfg.source.follow)


def make_labelled_source(cfg: Config) -> Source | None:
    """Labelled posts from the labelling tool: a JSONL log if configured, else the Kafka topic."""
    from .sources.files import FileSource

    c = cfg.continual
    if c.labelled_path is not None:
        return FileSource([c.labelled_path], checkpoint=_checkpoint(cfg, "labelled", [c.labelled_path]))
    if cfg.source.kind == "kafka":
        from .sources.kafka import KafkaSource

        return KafkaSource(cfg.kafka.model_copy(update={"topic": c.labelled_topic, "group_id": c.labelled_group_id}),
                           cfg.worker.batch_size)
    return None


def _checkpoint(cfg: Config, kind: str, paths: Sequence[Path], run_key: str = "") -> Path:
    import hashlib

    key = "\n".join(str(Path(p).resolve()) for p in paths) + (f"\n#{run_key}" if run_key else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cfg.worker.state_dir / f"{kind}-{digest}.json"


def make_dead_letters(cfg: Config) -> DeadLetterSink:
    if cfg.source.kind == "kafka":
        return KafkaDeadLetterSink(cfg.kafka)
    return FileDeadLetterSink(cfg.worker.dead_letter_path)


def make_observations(cfg: Config) -> ObservationSink | None:
    """Where uncertain pairs/spans go for novelty discovery; None when disabled."""
    return ObservationSink(cfg.novelty.observations_dir) if cfg.novelty.enabled else None


def zero_shot_relations(graph: GraphStore) -> list:
    """The relations to label zero-shot: those people confirmed (``mkg candidates confirm``) and
    those labelled posts proposed as a continual task that no promoted model has learnt yet
    (``SchemaClass`` status ``proposed``, or ``refused`` by the gate). The wrapped extractor drops
    any its current model already knows."""
    from continual.candidates.graph import RELATION
    from extractors.kinds import MRE

    return _zero_shot_classes(graph, RELATION, MRE.name)


def zero_shot_types(graph: GraphStore) -> list:
    """The entity types to label zero-shot: confirmed type candidates and types labelled posts proposed
    as a task that no promoted tagger has learnt yet (as :func:`zero_shot_relations`)."""
    from continual.candidates.graph import TYPE
    from extractors.kinds import MNER

    return _zero_shot_classes(graph, TYPE, MNER.name)


def _zero_shot_classes(graph: GraphStore, candidate_kind: str, model_kind: str) -> list:
    """Confirmed candidates of ``candidate_kind`` (with their descriptions), then the classes of
    ``model_kind`` a task proposed or the gate refused, by name."""
    from continual.candidates.graph import confirmed_names
    from extractors.zero_shot.model import ZeroShotClass
    from graph_store.schema_registry import classes_with_status

    named = dict(confirmed_names(graph, candidate_kind))
    for name in classes_with_status(graph, model_kind, ["proposed", "refused"]):
        named.setdefault(name, "")
    return [ZeroShotClass(name, description) for name, description in sorted(named.items())]


def with_zero_shot(cfg: Config, graph: GraphStore, extractor: Extractor) -> Extractor:
    """``extractor`` wrapped to label confirmed relations zero-shot (``zero_shot.enabled``)."""
    zs = cfg.zero_shot
    if not zs.enabled:
        return extractor
    from extractors.zero_shot.labeller import ZeroShotExtractor
    from extractors.zero_shot.model import SHIPPED_ZERO_SHOT, ZeroShotModel

    model = ZeroShotModel.load(zs.model_dir or SHIPPED_ZERO_SHOT)
    return ZeroShotExtractor(extractor, model, lambda: zero_shot_relations(graph), zs.threshold, zs.refresh_s,
                             types=lambda: zero_shot_types(graph), type_threshold=zs.type_threshold,
                             write_facts=writes_zero_shot_facts(zs.write_facts, model, zs.threshold,
                                                                cfg.extractor.target_precision))


def writes_zero_shot_facts(setting: str, model, threshold: float | None, target_precision: float) -> bool:
    """Whether zero-shot labels become facts: ``always``/``never``, or (``auto``) when the scorer's
    held-out precision at its own threshold reaches the target (another threshold is unmeasured)."""
    if setting != "auto":
        return setting == "always"
    precise = model.held_out_precision is not None and model.held_out_precision >= target_precision
    return precise and threshold in (None, model.threshold)


def make_worker(cfg: Config, graph: GraphStore, source: Source, dead_letters: DeadLetterSink,
                extractor: Extractor | None = None, observations: ObservationSink | None = None,
                accept: Callable[[Post], bool] | None = None, stop: threading.Event | None = None) -> Worker:
    w = cfg.worker
    extractor = with_zero_shot(cfg, graph, extractor or make_extractor(cfg))
    return Worker(source, extractor, graph, dead_letters, w.batch_size,
                  w.retry_initial_s, w.retry_max_s, observations=observations, accept=accept,
                  retry_limit_s=w.retry_limit_s, images=image_policy(cfg), stop=stop,
                  write_batch=w.write_batch, linger_s=w.linger_ms / 1000)


def image_policy(cfg: Config) -> ImagePolicy:
    im = cfg.images
    return ImagePolicy(tuple(im.roots), im.max_bytes, im.max_pixels, im.max_side)


@contextmanager
def running_worker(cfg: Config, paths: Sequence[Path] | None = None, run_key: str = "",
                   accept: Callable[[Post], bool] | None = None,
                   extractor: Extractor | None = None,
                   stop: threading.Event | None = None) -> Iterator[tuple[GraphStore, Worker]]:
    """Graph (schema ensured), source, dead letters and worker, all closed on exit.

    ``accept`` filters posts (e.g. a backfill's date range); the rest are
    skipped and committed, not dead-lettered. ``stop`` is the shutdown flag
    the caller's signal handlers set: installed before the graph server
    starts and the models load, so an early SIGTERM still shuts down cleanly.
    """
    graph = open_graph(cfg)
    try:
        graph.ensure_schema()
        source = make_source(cfg, paths, run_key)
        dead, observations = make_dead_letters(cfg), make_observations(cfg)
        try:
            yield graph, make_worker(cfg, graph, source, dead, extractor, observations=observations, accept=accept,
                                     stop=stop)
        finally:
            source.close()
            dead.close()
            if observations is not None:
                observations.close()
    finally:
        graph.close()
