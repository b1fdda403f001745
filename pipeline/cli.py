"""``mkg``: run the multimodal knowledge-graph pipeline from the command line."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from extractors.kinds import KINDS, MNER

from .config import SAMPLE_IMAGES, SAMPLE_STREAM, Config, ConfigError, load_config
from .logs import setup_logging

log = logging.getLogger("mkg")

EXAMPLE_QUERY = (
    "MATCH (h:Entity)-[r]->(t:Entity) WHERE r.inferred = false "
    "RETURN h.name AS head, type(r) AS relation, t.name AS tail, round(r.belief * 100) / 100 AS belief, "
    "size(r.post_ids) AS posts, r.post_ids[0] AS post ORDER BY belief DESC, head, tail LIMIT 12"
)
# every extracted fact with its post ids, for scoring the demo's graph against the sample's gold
FACTS_WITH_POSTS = "MATCH (h:Entity)-[r]->(t:Entity) WHERE r.inferred = false RETURN h.key, type(r), t.key, r.post_ids"
IMAGE_QUERY = (
    "MATCH (p:Post)-[:MENTIONS]->(h:Entity)-[r]->(t:Entity) WHERE p.id IN r.post_ids AND p.image IS NOT NULL "
    "RETURN p.id AS post, h.name AS head, type(r) AS relation, t.name AS tail, "
    "round(r.confidence * 100) / 100 AS confidence ORDER BY post, head, tail"
)

CONFIG_HELP = "YAML config file (examples in pipeline/configs/); without it: embedded local log + embedded graph"
MODELS_HELP = "model store folder (default: extractor.models_dir of --config, var/models without one)"


def _load(args) -> Config:
    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.format)
    return cfg


def _models_dir(args) -> Path:
    """The model store of ``mkg train/evaluate/models``: ``--models``, else the config's ``extractor.models_dir``."""
    return Path(args.models) if args.models else load_config(args.config).extractor.models_dir


def cmd_demo(args) -> int:
    """Embedded end to end: bundled sample (posts with and without photos) -> the shipped
    multimodal extractor -> embedded graph -> summary + queries."""
    import time

    from .runtime import running_worker

    started = time.perf_counter()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mkg-demo-"))
    cfg = load_config(None, environ={})
    cfg.source.path = Path(args.posts) if args.posts else SAMPLE_STREAM
    cfg.images.roots = [args.images or SAMPLE_IMAGES]
    cfg.graph.embedded_dir = workdir / "graph"
    cfg.worker.dead_letter_path = workdir / "dead_letters.jsonl"
    cfg.worker.state_dir = workdir / "state"
    cfg.novelty.observations_dir = workdir / "observations"
    setup_logging("WARNING", "text")
    with running_worker(cfg) as (graph, worker):
        metrics = worker.run()
        counts = graph.query(
            "MATCH (p:Post) WITH count(p) AS posts MATCH (e:Entity) WITH posts, count(e) AS entities "
            "OPTIONAL MATCH (:Entity)-[r]->(:Entity) RETURN posts, entities, count(r) AS facts"
        ).rows[0]
        with_image = graph.query("MATCH (p:Post) WHERE p.image IS NOT NULL RETURN count(p)").rows[0][0]
        print(f"Processed {metrics.records_received} records from {cfg.source.path.name} with {worker.extractor.model_version}")
        for line in _extractor_versions(worker.extractor):
            print(f"  {line}")
        print(f"  posts in graph: {counts[0]} ({with_image} with a photo), entities: {counts[1]}, facts: {counts[2]}")
        print(f"  dead letters: {metrics.dead_lettered} -> {cfg.worker.dead_letter_path} {dict(metrics.dead_letters)}")
        print(f"  graph: embedded FalkorDB in {cfg.graph.embedded_dir}\n")
        print(f"Example query:\n  {EXAMPLE_QUERY}\n")
        _print_table(graph.query(EXAMPLE_QUERY))
        print(f"\nFacts from posts with a photo:\n  {IMAGE_QUERY}\n")
        _print_table(graph.query(IMAGE_QUERY))
        if not args.posts:
            print(f"\n{_measured_against_gold(graph)}")
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s")
    return 0


def _measured_against_gold(graph) -> str:
    """The demo's facts scored against the sample stream's hand-labelled gold (docs/LABELLING.md)."""
    from .labelled_facts import SAMPLE_GOLD, load_gold, score_graph_facts

    m = score_graph_facts(graph.query(FACTS_WITH_POSTS).rows, load_gold(SAMPLE_GOLD, SAMPLE_STREAM))
    return (f"Measured against the hand-labelled sample ({SAMPLE_GOLD.name}): precision {m['precision']:.2f} "
            f"({m['right']} of {m['written']} facts right), recall {m['recall']:.2f} "
            f"(of {m['gold']} facts the posts state)")


def _extractor_versions(extractor) -> list[str]:
    """One line per model kind: version and where it came from (shipped / trained / continual),
    and the zero-shot scorer with the classes it labels now."""
    out = []
    zero_shot = extractor if hasattr(extractor, "active_classes") else None
    if zero_shot is not None:
        extractor = zero_shot.inner
    store = getattr(extractor, "store", None)
    for kind in KINDS if store is not None else ():
        version = store.current_version(kind)
        if version is not None:
            out.append(f"{kind}: {version} ({store.origin(kind, version)})")
    if zero_shot is not None:
        active = [c.name for c in zero_shot.active_classes()]
        out.append(f"zero-shot: {zero_shot.model.version}, labelling {', '.join(active) if active else 'no class yet'}")
    return out


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set a flag instead of killing the process, from the very
    start: a signal that arrives while the graph server starts or the models
    load still lets the worker stop what it started."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_worker(args) -> int:
    from contextlib import nullcontext

    from tqdm import tqdm

    from .health import HealthServer
    from .runtime import running_worker

    stop = _stop_on_signals()
    cfg = _load(args)
    if args.metrics_port is not None:
        cfg.worker.metrics_port = args.metrics_port
    w = cfg.worker
    with running_worker(cfg, stop=stop) as (_, worker):
        log.info("worker started", extra={"source": cfg.source.kind, "graph": cfg.graph.backend,
                                          "extractor": worker.extractor.model_version})
        serving = (HealthServer(worker.metrics, w.metrics_host, w.metrics_port, w.liveness_timeout_s)
                   if w.metrics_port is not None else nullcontext())
        with serving, tqdm(desc="posts", unit="post", disable=not args.progress) as bar:
            metrics = worker.run(max_records=args.max_records, idle_timeout_s=args.idle_timeout, progress=bar)
    log.info("worker stopped", extra=metrics.as_dict())
    print(json.dumps(metrics.as_dict()))
    return 0


def cmd_backfill(args) -> int:
    from .backfill import expand_archives, run_backfill

    cfg = _load(args)
    result = run_backfill(cfg, expand_archives(args.paths), run_key=args.run_key or "", start=args.start,
                          end=args.end, progress=not args.no_progress, reextract=args.reextract)
    print(json.dumps(result))
    return 0


def cmd_produce(args) -> int:
    from kafka import KafkaProducer
    from tqdm import tqdm

    from .sources.files import FileSource, count_lines

    cfg = _load(args)
    topic = args.topic or cfg.kafka.topic
    producer = KafkaProducer(acks="all", max_request_size=cfg.kafka.max_message_bytes, linger_ms=5,
                             **cfg.kafka.client_options())
    source = FileSource([args.file])
    sent = 0
    with tqdm(total=count_lines([Path(args.file)]), desc=f"-> {topic}", unit="post", disable=args.no_progress) as bar:
        while records := source.poll(500):
            for rec in records:
                producer.send(topic, value=rec.payload)
            sent += len(records)
            bar.update(len(records))
    producer.flush()
    producer.close()
    print(json.dumps({"topic": topic, "sent": sent}))
    return 0


def cmd_query(args) -> int:
    from .runtime import open_graph

    cfg = _load(args)
    params = json.loads(args.params) if args.params else None
    graph = open_graph(cfg)
    try:
        result = graph.query(args.cypher, params)
    finally:
        graph.close()
    if args.format == "json":
        print(json.dumps([dict(zip(result.columns, row)) for row in result.rows], default=str, ensure_ascii=False))
    else:
        _print_table(result)
    return 0


def cmd_services(args) -> int:
    from .services.manager import ServiceManager

    setup_logging("INFO", "text")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # health probes of a stopped broker are expected to fail
    manager = ServiceManager()
    names = args.only or sorted(manager.services)
    if args.action == "up":
        manager.up(names, timeout_s=args.timeout)
    elif args.action == "down":
        manager.down(names)
    for st in manager.status(names):
        state = "healthy" if st.healthy else ("starting/unhealthy" if st.running else "stopped")
        print(f"{st.name:6} {state:18} pid={st.pid or '-':<8} {st.address}")
    return 0


def cmd_train(args) -> int:
    from extractors.encoders import EncoderSpec
    from extractors.run import train
    from extractors.training import TrainConfig

    setup_logging("WARNING", "text")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    lr = args.lr if args.lr is not None else (5e-4 if args.peft == "lora" else 5e-5)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=lr, head_lr=args.head_lr,
                      seed=args.seed, device=args.device, progress=not args.no_progress, peft=args.peft,
                      lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      image_gate=not args.no_image_gate,
                      **({} if args.image_augment is None else {"image_augment": args.image_augment}))
    version, metrics = train(args.kind, args.data, _models_dir(args), cfg, EncoderSpec(args.text, args.vision),
                             limit=args.limit, promote=args.promote, resume=args.resume, save_dtype=args.save_dtype)
    print(json.dumps({"version": version, "promoted": args.promote, "best_epoch": metrics["best_epoch"],
                      "val": metrics["val"], "train_seconds": metrics["train_seconds"],
                      "trainable_params": metrics["trainable_params"]}, default=float))
    return 0


def cmd_evaluate(args) -> int:
    from extractors.run import evaluate, evaluate_spacy_ner

    setup_logging("WARNING", "text")
    if args.spacy:
        if args.kind != MNER.name:
            raise SystemExit("mkg: --spacy evaluates spaCy's NER; use it with 'mner'")
        result = evaluate_spacy_ner(args.data, args.limit)
    else:
        models = _models_dir(args)
        result = evaluate(args.kind, args.data, models, args.version, args.device, args.limit, shipped=True)
        if args.record:
            from extractors.store import ModelStore

            store = ModelStore(models, shipped=True)
            if store.is_shipped(args.kind, result["version"]):
                print(f"mkg: {result['version']} is shipped; its test scores are recorded in the package",
                      file=sys.stderr)
            else:
                store.record_metrics(args.kind, result["version"], "test",
                                     {k: v for k, v in result.items() if k != "version"})
    text = json.dumps(result, default=float, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def cmd_models(args) -> int:
    from extractors.store import ModelStore, version_rows

    models = _models_dir(args)
    store = ModelStore(models, shipped=True)
    if args.models_command == "promote":
        store.promote(args.kind, args.version)
        print(json.dumps({"kind": args.kind, "current": args.version,
                          "origin": store.origin(args.kind, args.version)}))
        return 0
    rows = version_rows(store)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
        return 0
    if not rows:
        print(f"no models in {models} and none shipped")
        return 0
    fmt = "{:1} {:4} {:32} {:9} {:7} {:>7} {:12} {:>7} {:>7}  {}"
    print(fmt.format("", "kind", "version", "origin", "format", "MB", "data", "val F1", "test F1", "path"))
    for r in rows:
        f1 = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "-"
        print(fmt.format("*" if r["current"] else "", r["kind"], r["version"], r["origin"], r["format"],
                         f"{r['mb']:.2f}", r["data_fingerprint"][:12], f1(r["val_f1"]), f1(r["test_f1"]), r["path"]))
    print("* current (a kind with no version promoted in the store uses the shipped one when extractor.kind is auto)")
    return 0


def cmd_complete(args) -> int:
    from .jobs.completion import remove_inferred, run_completion

    cfg = _load(args)
    if args.remove_inferred:
        print(json.dumps({"removed": remove_inferred(cfg)}))
        return 0
    report = run_completion(cfg, threshold=args.threshold, top_k=args.top_k, full_retrain=args.full_retrain,
                            progress=not args.no_progress)
    print(json.dumps(report.as_dict(), default=float))
    return 0


def cmd_resolve(args) -> int:
    from .jobs.resolution import resolve

    print(json.dumps(resolve(_load(args), full=args.full).as_dict()))
    return 0


def cmd_unmerge(args) -> int:
    from .jobs.resolution import unmerge

    try:
        print(json.dumps(unmerge(_load(args), args.key, args.reason)))
    except KeyError as exc:
        print(f"mkg unmerge: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def cmd_facts(args) -> int:
    """Correct the graph by hand: reject or fix one extracted fact; list corrections; export them labelled."""
    import getpass

    from graph_store.corrections import CorrectionError, correct_fact, corrections_as_labels, list_corrections
    from mkg_common.clock import utc_iso

    from .runtime import open_graph

    cfg = _load(args)
    with open_graph(cfg) as graph:
        graph.ensure_schema()
        if args.action in ("reject", "fix"):
            graph.schema = graph.schema.extended({args.head.split(":", 1)[0], args.tail.split(":", 1)[0]},
                                                 {args.relation, *([args.to] if args.to else [])})
            try:
                done = correct_fact(graph, args.head, args.relation, args.tail, by=args.by or getpass.getuser(),
                                    at=utc_iso(), reason=args.reason, fixed_to=args.to if args.action == "fix" else None)
            except (CorrectionError, ValueError) as exc:
                print(f"mkg facts {args.action}: {exc}", file=sys.stderr)
                return 2
            print(json.dumps(done.__dict__))
        elif args.action == "list":
            for c in list_corrections(graph):
                print(json.dumps(c.__dict__))
        else:  # export
            from extractors.schema import label_for

            rows = corrections_as_labels(graph, label_for)
            with open(args.posts, "w", encoding="utf-8") as posts, open(args.labels, "w", encoding="utf-8") as labels:
                for post, label in rows:
                    posts.write(json.dumps(post, ensure_ascii=False) + "\n")
                    labels.write(json.dumps(label, ensure_ascii=False) + "\n")
            print(json.dumps({"labelled_posts": len(rows), "posts": args.posts, "labels": args.labels}))
    return 0


def cmd_candidates(args) -> int:
    import getpass

    from continual.candidates.graph import find_candidate, list_candidates
    from continual.candidates.review import CandidateError, confirm, known_class_names, merge, reject

    from .jobs.novelty import discover_from_config, labelled_store_of
    from .runtime import open_graph

    cfg = _load(args)
    if args.action == "discover":
        print(json.dumps(discover_from_config(cfg, window_hours=args.hours)))
        return 0
    graph = open_graph(cfg)
    try:
        if args.action == "list":
            rows = list_candidates(graph, args.status)
            if args.format == "json":
                print(json.dumps(rows, ensure_ascii=False, default=str))
            else:
                _print_candidates(rows)
        elif args.action == "confirm":
            print(json.dumps(confirm(graph, labelled_store_of(cfg), args.id, args.name,
                                     description=args.description, by=getpass.getuser())))
        elif args.action == "merge":
            cand = find_candidate(graph, args.id)
            if cand is None:
                raise CandidateError(f"no candidate with id {args.id!r}")
            labelled = labelled_store_of(cfg)
            print(json.dumps(merge(graph, labelled, args.id, args.into, known_class_names(graph, labelled, cand.kind),
                                   by=getpass.getuser())))
        else:
            print(json.dumps(reject(graph, args.id, by=getpass.getuser())))
    except CandidateError as exc:
        print(f"mkg: {exc}", file=sys.stderr)
        return 1
    finally:
        graph.close()
    return 0


def _print_candidates(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "status", "name", "size", "density", "nearest known (sim)", "types", "examples")
    for r in rows:
        types = "/".join(", ".join(t) for t in (r["head_types"] or [], r["tail_types"] or []) if t)
        near = f"{r['nearest_known']} ({r['known_similarity']:.2f})" if r["nearest_known"] else "-"
        examples = "\n".join(f"{pid}: {text[:90]}" for pid, text in zip(r["example_post_ids"] or [], r["example_texts"] or []))
        table.add_row(r["id"], r["kind"], r["status"], r["name"] or "", str(r["size"]), f"{r['density']:.2f}", near,
                      types, examples)
    Console(width=200).print(table)
    print(f"({len(rows)} candidates)")


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*[json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v) for v in row])
    Console(width=160).print(table)
    print(f"({len(result.rows)} rows)")


# --- the parser: one function per command ---------------------------------------------------------

def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the bundled sample, embedded (no servers)",
                       description="Read the bundled sample stream (posts with and without photos), extract entities and "
                                   "typed relations with the multimodal extractor (the versions promoted in "
                                   "var/models, else the ones shipped with mkg), write an embedded graph, print "
                                   "which models ran, a summary, and the facts with their confidences and posts.")
    p.add_argument("--posts", help="JSONL posts to use instead of the bundled sample")
    p.add_argument("--images", help="folder the posts' image paths point into (default: the sample's photos)")
    p.add_argument("--workdir", help="where the graph and dead letters go (default: a new temp dir)")
    p.set_defaults(func=cmd_demo)


def _add_worker(sub) -> None:
    p = sub.add_parser("worker", help="consume posts, extract, write the graph, commit",
                       description="Consume posts from the configured source (Kafka topic or embedded local log), "
                                   "extract entities/relations, write them to the graph, then commit offsets. "
                                   "Malformed posts go to the dead-letter topic/file. Stops cleanly on SIGTERM.")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--max-records", type=int, help="stop after this many records")
    p.add_argument("--idle-timeout", type=float, help="stop after this many seconds without new records")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve /metrics (Prometheus: consumer lag, stage latencies, dead letters by stage, "
                        "retries, model version), /livez and /readyz on worker.metrics_host:PORT "
                        "(0: any free port; default: worker.metrics_port from the config, off when unset)")
    p.set_defaults(func=cmd_worker)


def _add_backfill(sub) -> None:
    p = sub.add_parser("backfill", help="reprocess archived posts (JSONL or .jsonl.gz), resumable",
                       description="Run archived posts through the same path as the worker. Progress is "
                                   "checkpointed per file, so an interrupted backfill resumes; graph writes are "
                                   "idempotent, so running it twice changes nothing.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSONL or gzip JSONL files of posts, or globs ('archive/**/*.jsonl.gz')")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--start", help="only posts created on/after this date or ISO time (UTC)")
    p.add_argument("--end", help="only posts created on/before this date (whole day) or ISO time (UTC)")
    p.add_argument("--run-key", help="name of this run's checkpoints: the same key resumes, a new key reads the files again")
    p.add_argument("--reextract", action="store_true",
                   help="reprocess even files a previous backfill finished, with the current model "
                        "(run key = the model version); edges are updated, not duplicated")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_backfill)


def _add_produce(sub) -> None:
    p = sub.add_parser("produce", help="publish posts from a JSONL file to Kafka",
                       description="Send each line of FILE as one record to the Kafka topic (acks=all).")
    p.add_argument("file", metavar="FILE", help="JSONL file, one post per line")
    p.add_argument("--topic", help="topic (default: kafka.topic from the config, 'posts')")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_produce)


def _add_query(sub) -> None:
    p = sub.add_parser("query", help="run Cypher against the configured graph and print a table",
                       description="Run a Cypher query against the configured graph backend.")
    p.add_argument("cypher", help='e.g. "MATCH (e:Entity:PER) RETURN e.name LIMIT 5"')
    p.add_argument("--params", help="query parameters as a JSON object")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_query)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an MRE or MNER extractor on labelled data",
                       description="Fine-tune the dual-stream (text + vision) extractor: 'mre' on MNRE-format data "
                                   "(dict-literal lines), 'mner' on CoNLL data with IMGID lines. Selects the epoch with "
                                   "the best validation F1, saves a versioned model (safetensors + config + metrics) "
                                   "in the model store, and with --promote makes it the current model. CPU by "
                                   "default; CUDA with bf16 autocast when available. Checkpoints every epoch "
                                   "(--resume continues).")
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("--data", required=True, help="folder with train/val files (e.g. ../shared/data/mnre)")
    p.add_argument("--models", help=MODELS_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None,
                   help="encoder learning rate (the LoRA adapters' with --peft lora); default 5e-5, with LoRA 5e-4")
    p.add_argument("--head-lr", type=float, default=1e-3, help="classifier/CRF/key-bank learning rate")
    p.add_argument("--peft", choices=["none", "lora"], default="none",
                   help="none: fine-tune every text-encoder weight (default); lora: LoRA adapters on the text "
                        "stream, base encoders frozen, the version holds only what training changed (a few MB)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default 16)")
    p.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--save-dtype", choices=["float32", "float16"], default="float32",
                   help="dtype of the saved weights (float16 halves a version; upcast at load)")
    p.add_argument("--image-augment", type=float, metavar="SHARE",
                   help="share of training examples given an unrelated picture, label kept, so that pictures in "
                        "production do not sway a model trained on text-only data (default 0.5; 0: text only)")
    p.add_argument("--no-image-gate", action="store_true",
                   help="build the model without the image gate that scales the picture's say per post")
    p.add_argument("--threads", type=int, help="CPU threads for torch (on a shared machine 1 can be much faster "
                                                  "than contending for every core)")
    p.add_argument("--limit", type=int, help="use only the first N training examples (N/4 validation)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--text", default="minilm", help="text encoder: 'minilm' or a local HF model folder")
    p.add_argument("--vision", default="dinov2-small", choices=["dinov2-small", "random-vit-small"],
                   help="vision encoder (random-vit-small: tests only)")
    p.add_argument("--promote", action="store_true", help="make the new version current")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score an extractor on a test split (P/R/F1)",
                       description="MRE: micro P/R/F1 over relations excluding None (the literature's metric). "
                                   "MNER: entity-level P/R/F1 (seqeval). --spacy scores spaCy's NER instead.")
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("--data", required=True, help="test file, or a folder with the test split")
    p.add_argument("--models", help=MODELS_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--version", help="model version (default: current; the shipped one if none is promoted)")
    p.add_argument("--limit", type=int, help="only the first N test examples")
    p.add_argument("--device", default="cpu")
    p.add_argument("--spacy", action="store_true", help="evaluate spaCy en_core_web_sm NER (mner only)")
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--record", action="store_true",
                   help="also store the scores as the version's test metrics (shown by `mkg models list`)")
    p.set_defaults(func=cmd_evaluate)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the installed extractor versions, or promote one",
                       description="The model store's versions and the ones shipped in the package: where each "
                                   "came from (shipped / trained / continual), its format (adapter: LoRA weights "
                                   "only; full), size, training-data fingerprint and val/test F1. A kind with no "
                                   "version promoted in the store uses the shipped one (extractor.kind: auto).")
    store_arg = argparse.ArgumentParser(add_help=False)
    store_arg.add_argument("--models", help=MODELS_HELP)
    store_arg.add_argument("--config", help=CONFIG_HELP)
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = msub.add_parser("list", parents=[store_arg], help="every version, with origin, data fingerprint and val/test F1")
    m.add_argument("--json", action="store_true", help="JSON instead of a table")
    m = msub.add_parser("promote", parents=[store_arg],
                        help="make a version (trained, continual or shipped) the current one")
    m.add_argument("kind", choices=list(KINDS))
    m.add_argument("version")
    p.set_defaults(func=cmd_models)


def _add_complete(sub) -> None:
    p = sub.add_parser("complete", help="link-prediction completion: add inferred facts to the graph",
                       description="Snapshot the graph's extracted facts (never inferred ones), train a text-aware "
                                   "link-prediction model on them (or update the current version, warm-started), "
                                   "score (head, relation, ?) queries over type-compatible entities, and write the "
                                   "top-k answers whose probability among the candidates is at least the threshold "
                                   "as relationships with inferred: true, score, model_version and inferred_at. "
                                   "Facts already extracted are skipped; the previous run's inferred edges are "
                                   "replaced, not duplicated. The report gives the precision and recall of the "
                                   "threshold on held-out facts; with completion.target_precision set, the run picks "
                                   "the lowest threshold that reaches it there. Settings: the 'completion' section of the config.",
                       epilog="Query only extracted facts with WHERE r.inferred = false, only inferred ones with "
                              "WHERE r.inferred = true.")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--threshold", type=float, help="min probability of a written prediction (default: completion.threshold, "
                                                   "0.5, or the one calibrated for completion.target_precision)")
    p.add_argument("--top-k", type=int, help="answers kept per (head, relation) query (default: completion.top_k, 3)")
    p.add_argument("--full-retrain", action="store_true", help="train from scratch instead of warm-starting from the current version")
    p.add_argument("--remove-inferred", action="store_true", help="only delete every inferred edge (extracted facts stay) and exit")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_complete)


def _add_facts(sub) -> None:
    p = sub.add_parser("facts", help="correct the graph: reject or fix one extracted fact, list or export corrections",
                       description="reject: remove one extracted fact and record who rejected it, when and why; "
                                   "fix: replace its relation (the posts stay its evidence). Either way no later "
                                   "extraction, of the same post or any other, writes the fact again. list: every "
                                   "correction. export: the corrections as labelled posts (docs/LABELLING.md format: "
                                   "a rejected fact is a pair with no relation) for the next training.",
                       epilog="Example: mkg facts reject 'PER:jason pierre-paul' MEMBER_OF 'ORG:espn' "
                              "--reason 'ESPN reports on him'")
    p.add_argument("action", choices=["reject", "fix", "list", "export"])
    p.add_argument("head", nargs="?", help="the head entity's key, e.g. 'PER:jason pierre-paul'")
    p.add_argument("relation", nargs="?", help="the relationship type, e.g. MEMBER_OF")
    p.add_argument("tail", nargs="?", help="the tail entity's key")
    p.add_argument("--to", help="fix: the right relationship type")
    p.add_argument("--reason", default="", help="kept on the correction")
    p.add_argument("--by", help="who decides (default: the OS user)")
    p.add_argument("--posts", default="corrections_posts.jsonl", help="export: the posts file")
    p.add_argument("--labels", default="corrections_labels.jsonl", help="export: the labels file")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=_facts_checked)


def _facts_checked(args) -> int:
    if args.action in ("reject", "fix") and not (args.head and args.relation and args.tail):
        print(f"mkg facts {args.action}: give HEAD RELATION TAIL", file=sys.stderr)
        return 2
    if args.action == "fix" and not args.to:
        print("mkg facts fix: give the right relation with --to", file=sys.stderr)
        return 2
    return cmd_facts(args)


def _add_resolve(sub) -> None:
    p = sub.add_parser("resolve", help="entity resolution: link entity nodes that name one real-world entity",
                       description="Compare the entity nodes no run has compared yet with those that share a word, "
                                   "an acronym or a surface form with them; decide each pair from names (handles, "
                                   "hashtags, acronyms, person name parts, spelling, name embeddings) with post "
                                   "contexts able to veto; link the merges as (a)-[:SAME_AS {confidence, evidence}]->(b) "
                                   "and give each cluster a canonical key. Nodes and their facts are never moved, "
                                   "so workers keep writing while it runs, and a merge can be undone (mkg unmerge). "
                                   "Settings: the 'resolution' section of the config.",
                       epilog="One node per entity in Cypher: coalesce(e.canonical, e.key). Example: MATCH (e:Entity) "
                              "RETURN coalesce(e.canonical, e.key) AS entity, collect(e.name) AS names")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--full", action="store_true", help="compare every entity again, not only those no run compared")
    p.set_defaults(func=cmd_resolve)
    p = sub.add_parser("unmerge", help="take an entity out of its cluster; resolution never links it back",
                       description="Turn every SAME_AS link of the entity into NOT_SAME_AS (with the reason and "
                                   "time), and recompute the canonical keys of the cluster it leaves. Idempotent.")
    p.add_argument("key", help="the entity's key, e.g. 'PER:donald trump' (see MATCH (e:Entity) RETURN e.key)")
    p.add_argument("--reason", default="unmerged by hand", help="kept on the NOT_SAME_AS links")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_unmerge)


def _add_candidates(sub) -> None:
    p = sub.add_parser("candidates", help="review candidate new relations/entity types found in the stream",
                       description="Workers record entity pairs the relation model could not relate (None or below "
                                   "extractor.relation_threshold) and spans the tagger could not type (below "
                                   "novelty.span_threshold) under novelty.observations_dir. Discovery (hourly in the "
                                   "detect_novelty DAG, or 'discover' here) clusters a window of them with MiniLM and "
                                   "writes clusters that are large, dense and unlike every labelled class as "
                                   ":CandidateRelation / :CandidateType nodes with example posts. Here a person "
                                   "lists them, names one (its observations become labelled training examples in "
                                   "continual.labelled_dir, which the update DAG then learns) or rejects it (it "
                                   "stays in the graph, so the pattern is not proposed again).",
                       epilog="Examples: mkg candidates list --status pending; "
                              "mkg candidates confirm cand-rel-1a2b3c4d5e6f --name /per/org/founded_by; "
                              "mkg candidates confirm cand-type-0f1e2d3c4b5a --name PRODUCT; "
                              "mkg candidates reject cand-rel-1a2b3c4d5e6f")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("list", help="candidates with size, density, nearest known class and example posts",
                        description="Print candidates (pending first, largest first) from the configured graph.")
    c.add_argument("--status", choices=["pending", "confirmed", "rejected"], help="only candidates in this state")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.add_argument("--config", help=CONFIG_HELP)
    c = csub.add_parser("confirm", help="name a candidate: its observations become labelled examples",
                        description="Turn the candidate's member observations into labelled examples of NAME and "
                                    "mark it confirmed. NAME is a relation for a CandidateRelation (e.g. "
                                    "/per/org/founded_by; its last part must make a graph relationship type "
                                    "[A-Z][A-Z0-9_]* when upper-cased) or an entity type for a CandidateType "
                                    "(e.g. PRODUCT). Repeating a confirmation adds nothing twice. From then "
                                    "on, workers label a confirmed relation zero-shot (facts with zero_shot: "
                                    "true) until a continual update that knows it is promoted.")
    c.add_argument("id", metavar="ID", help="candidate id from 'mkg candidates list'")
    c.add_argument("--name", required=True, help="relation name or entity type")
    c.add_argument("--description", help="one line saying what the relation means (read by the zero-shot scorer "
                                         "with the name, e.g. 'the person who founded the organization')")
    c.add_argument("--config", help=CONFIG_HELP)
    c = csub.add_parser("merge", help="the candidate is a class that exists: its observations become its examples",
                        description="Like confirm, into a class that already has labelled examples (or was "
                                    "confirmed before); any other name is refused. Recorded as decision: merged.")
    c.add_argument("id", metavar="ID", help="candidate id from 'mkg candidates list'")
    c.add_argument("--into", required=True, help="the existing relation or entity type")
    c.add_argument("--config", help=CONFIG_HELP)
    c = csub.add_parser("reject", help="mark a candidate rejected (not proposed again)",
                        description="Mark the candidate rejected; later discovery runs update it instead of "
                                    "proposing the same pattern again.")
    c.add_argument("id", metavar="ID", help="candidate id from 'mkg candidates list'")
    c.add_argument("--config", help=CONFIG_HELP)
    c = csub.add_parser("discover", help="run discovery now over the last hours of observations",
                        description="What the hourly detect_novelty DAG runs; prints a JSON summary (observations, "
                                    "clusters, candidates new/updated). Thresholds: the 'novelty' config section.")
    c.add_argument("--hours", type=int, default=24, help="window length (default 24)")
    c.add_argument("--config", help=CONFIG_HELP)
    for c in csub.choices.values():
        c.set_defaults(func=cmd_candidates)


def cmd_ui(args) -> int:
    from .console import ConsoleError, serve

    cfg = _load(args)
    if args.host:
        cfg.ui.host = args.host
    if args.port is not None:
        cfg.ui.port = args.port
    try:
        serve(cfg)
    except ConsoleError as exc:
        print(f"mkg: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_ui(sub) -> None:
    p = sub.add_parser("ui", help="the web console: review candidates, explore the graph, watch the stream",
                       description="Serve the web console on the configured graph and model store: the review queue "
                                   "of candidate relations and entity types (confirm with a name, merge into a known "
                                   "class, reject; the same code as 'mkg candidates', recorded with who and when), "
                                   "an entity explorer (neighbourhood, each edge's evidence posts, model versions, "
                                   "confidence, the Cypher behind the page), and the stream and models (records/s, "
                                   "consumer lag and dead letters by stage from the workers' /metrics, model "
                                   "versions, continual updates with the gate's reasons, completion runs). Pages are "
                                   "server-rendered and run no JavaScript; writes need a CSRF token.",
                       epilog="Binds ui.host (127.0.0.1) and ui.port (8050). Any other address needs a password: "
                              "MKG_UI_PASSWORD (user ui.user), and MKG_UI_SECRET_KEY keeps logins across restarts. "
                              "Worker metrics: ui.metrics_urls, e.g. "
                              "MKG__UI__METRICS_URLS='[\"http://127.0.0.1:9108/metrics\"]'.")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--host", help="address to bind (default: ui.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: ui.port, 8050)")
    p.set_defaults(func=cmd_ui)


def _add_services(sub) -> None:
    p = sub.add_parser("services", help="start/stop/check the local Kafka and Neo4j servers",
                       description="Resolve Apache Kafka (KRaft) and Neo4j Community from Maven Central with mvn "
                                   "(jars cached in ~/.cache/mkg, or $MKG_CACHE_DIR), run them on 127.0.0.1 with "
                                   "data under $MKG_SERVICES_DIR (default /tmp/mkg-services), and stop them by PID. "
                                   "Ports: $MKG_KAFKA_PORT (9092), $MKG_NEO4J_BOLT_PORT (7687).")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--only", action="append", choices=["kafka", "neo4j"], help="act on one service (repeatable)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health on 'up'")
    p.set_defaults(func=cmd_services)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mkg",
        description="Build a multimodal knowledge graph from a stream of posts: validate, extract entities "
                    "and relations, write them with provenance to a Cypher graph (embedded FalkorDB or Neo4j).",
        epilog="Secrets come from the environment: MKG_NEO4J_PASSWORD, MKG_KAFKA_SASL_USERNAME, "
               "MKG_KAFKA_SASL_PASSWORD, MKG_UI_PASSWORD, MKG_UI_SECRET_KEY; any key can be overridden as MKG__SECTION__KEY=value.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from continual.cli import add_benchmark_parser, add_continual_parser

    for add in (_add_demo, _add_worker, _add_backfill, _add_produce, _add_query, _add_train, _add_evaluate,
                _add_models, _add_complete, _add_resolve, _add_facts, _add_candidates, _add_ui, add_benchmark_parser,
                add_continual_parser, _add_services):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"mkg: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Start-up and shutdown failures a user can act on (a missing file, a
        # folder that cannot be written, a graph that stayed down) are one
        # line, not a traceback; MKG_DEBUG=1 shows the traceback.
        from graph_store.base import GraphUnavailable

        from .worker import GraphDown

        if os.environ.get("MKG_DEBUG") or not isinstance(exc, (OSError, GraphUnavailable, GraphDown)):
            raise
        print(f"mkg: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, GraphDown) else 1


if __name__ == "__main__":
    sys.exit(main())
