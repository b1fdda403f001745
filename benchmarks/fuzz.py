"""No poison pills (issue #15): many generated hostile and valid posts through the worker.

The inputs come from the hypothesis generators of ``tests/fuzz_posts.py`` (the same ones
``tests/integration/test_fuzz_worker.py`` uses): valid posts with odd unicode, annotations
and images, and hostile payloads (invalid UTF-8, truncated JSON, 100k-deep nesting,
5000-digit integers, NUL and lone surrogates, dates at the ends of the range, whitespace
ids, huge texts, wrong types, hostile image paths, decompression bombs, ...), with
re-deliveries and conflicts. They go through the worker on the embedded graph in chunks
(one JSONL file, a fresh graph and dead-letter file per chunk; half the chunks with an
extractor that decodes images), and every chunk is checked: each record in the graph xor
in the dead letters with the expected stage, good posts written once, nothing unknown in
the graph, dead-letter keys unique.

Run: python -m benchmarks.fuzz [--inputs 100000] [--chunk 5000] [--seed 0]
Progress: a tqdm bar, and one JSON line per chunk in --progress
(default $TMPDIR/fuzz_progress.jsonl).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from .common import write_result

REPO = Path(__file__).resolve().parents[1]


def load_generators():
    """``tests/fuzz_posts.py``, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fuzz_posts", REPO / "tests" / "fuzz_posts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_posts"] = module
    spec.loader.exec_module(module)
    return module


class Chunks:
    """Collects generated streams into chunks and runs the worker over each chunk."""

    def __init__(self, fp, env, work: Path, chunk: int, batch_sizes: tuple[int, ...], progress_path: Path,
                 bar: tqdm) -> None:
        from graph_store.embedded import EmbeddedGraphStore

        self.fp, self.env, self.work, self.chunk = fp, env, work, chunk
        self.batch_sizes = batch_sizes
        self.store = EmbeddedGraphStore(work / "graph")
        self.store.ensure_schema()
        self.pending: list = []
        self.total = fp.Outcome()
        self.inputs = 0
        self.chunks = 0
        self.crashes: list[str] = []
        self.violation_examples: list[str] = []
        self.violations = 0
        self.started = time.monotonic()
        self.progress = open(progress_path, "w")
        self.bar = bar

    def add(self, items: list) -> None:
        self.pending.extend(items)
        if len(self.pending) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        from pipeline.dead_letter import FileDeadLetterSink, read_dead_letters
        from pipeline.sources.files import FileSource
        from pipeline.worker import Worker

        fp, items, self.pending = self.fp, self.pending, []
        n = self.chunks
        self.chunks += 1
        uses_images = n % 2 == 1
        batch_size = self.batch_sizes[n % len(self.batch_sizes)]
        stream, dead = self.work / f"chunk-{n}.jsonl", self.work / f"dead-{n}.jsonl"
        records = fp.write_stream(stream, items)
        extractor = fp.ImageCheckingExtractor(self.env.policy.max_side) if uses_images else fp.GivenEntitiesExtractor()
        sink = FileDeadLetterSink(dead)
        source = FileSource([stream])
        started = time.monotonic()
        crashed = None
        try:
            self.store.query("MATCH (n) DETACH DELETE n")
            worker = Worker(source, extractor, self.store, sink, batch_size=batch_size, retry_initial_s=0.1,
                            retry_max_s=1.0, retry_limit_s=15, images=self.env.policy)
            metrics = worker.run()
        except Exception as exc:  # noqa: BLE001 - a crash is what this benchmark counts
            crashed = f"chunk {n}: {type(exc).__name__}: {str(exc)[:300]}"
            self.crashes.append(crashed)
            logging.getLogger("benchmarks.fuzz").error("worker run raised\n%s", traceback.format_exc())
            metrics = worker.metrics if "worker" in locals() else None
        finally:
            sink.close()
            source.close()
        seconds = time.monotonic() - started
        if crashed is None:
            outcome = fp.check_outcome(records, records_received=metrics.records_received,
                                       metrics_dead=metrics.dead_letters, letters=read_dead_letters(dead),
                                       posts=fp.graph_posts(self.store), uses_images=uses_images,
                                       seen_images=getattr(extractor, "seen_images", None),
                                       entity_duplicates=fp.duplicated_entities(self.store), max_report=10)
            self.total.merge(outcome)
            real = [v for v in outcome.violations if v != "..."]
            self.violations += len(real)
            self.violation_examples += real[: max(0, 20 - len(self.violation_examples))]
        else:  # a fresh server for the next chunk, whatever state this one is in
            from graph_store.embedded import EmbeddedGraphStore

            try:
                self.store.close()
            except Exception:  # noqa: BLE001
                pass
            EmbeddedGraphStore.stop_server(self.work / "graph")
            shutil.rmtree(self.work / "graph", ignore_errors=True)
            self.store = EmbeddedGraphStore(self.work / "graph")
            self.store.ensure_schema()
        self.inputs += len(items)
        self.bar.update(len(items))
        elapsed = time.monotonic() - self.started
        line = {"chunk": n, "inputs": self.inputs, "chunk_inputs": len(items), "records": len(records),
                "batch_size": batch_size, "uses_images": uses_images, "chunk_seconds": round(seconds, 2),
                "elapsed_s": round(elapsed, 1), "inputs_per_s": round(self.inputs / elapsed, 1),
                "crashed": crashed, "violations": self.violations, "good_lost": self.total.good_lost,
                "good_duplicated": self.total.good_duplicated,
                "dead_lettered_by_stage": dict(self.total.dead_lettered_by_stage)}
        self.progress.write(json.dumps(line) + "\n")
        self.progress.flush()
        stream.unlink(missing_ok=True)  # hostile chunks are large (100k-deep nesting, 12 MB texts)
        dead.unlink(missing_ok=True)

    def close(self) -> None:
        self.flush()
        self.progress.close()
        self.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000, help="inputs per worker run (fresh graph per chunk)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument("--batch-sizes", default="16,17,32,50,64")
    parser.add_argument("--progress", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_progress.jsonl")
    parser.add_argument("--no-result", action="store_true", help="do not write benchmarks/results/fuzz.json")
    args = parser.parse_args()

    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pipeline").setLevel(logging.CRITICAL)  # thousands of "dead-lettered" lines otherwise
    logging.getLogger("graph_store").setLevel(logging.CRITICAL)

    fp = load_generators()
    work = Path(tempfile.mkdtemp(prefix="mkg-fz-"))  # short: the graph's unix socket lives here
    env = fp.make_env(work)
    args.progress.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=args.inputs, unit="input", smoothing=0.05)
    chunks = Chunks(fp, env, work, args.chunk, tuple(int(b) for b in args.batch_sizes.split(",")), args.progress, bar)
    examples = [0]

    def generate(n_examples: int, run_seed: int) -> None:
        @seed(run_seed)
        @settings(max_examples=n_examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def one(data):
            if chunks.inputs + len(chunks.pending) >= args.inputs:
                return
            k = examples[0]
            examples[0] += 1
            chunks.add(data.draw(st.composite(lambda draw: fp.draw_stream(draw, env, 50, 110, prefix=f"x{k}-"))()))
        one()

    started = time.monotonic()
    try:
        for round_ in range(1000):  # hypothesis stops at max_examples; go on until enough inputs
            if chunks.inputs + len(chunks.pending) >= args.inputs:
                break
            left = args.inputs - chunks.inputs - len(chunks.pending)
            generate(max(1, left // 75 + 1), args.seed * 1000 + round_)
        chunks.close()
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    total = chunks.total
    kinds = Counter()
    for kind, n in total.kinds.items():
        kinds[kind.split(":")[0]] += n
    metrics = {
        "inputs": chunks.inputs,
        "crashes": len(chunks.crashes),
        "good_lost": total.good_lost,
        "good_duplicated": total.good_duplicated,
        "dead_lettered_by_stage": dict(sorted(total.dead_lettered_by_stage.items())),
        "records": total.records,
        "written": total.written,
        "good_posts": total.good,
        "invariant_violations": chunks.violations,
        "chunks": chunks.chunks,
        "chunk_inputs": args.chunk,
        "hypothesis_examples": examples[0],
        "seconds": round(seconds, 1),
        "inputs_per_s": round(chunks.inputs / seconds, 1),
        "records_by_kind": dict(sorted(kinds.items())),
        "crash_examples": chunks.crashes[:10],
        "violation_examples": chunks.violation_examples,
    }
    notes = ("inputs = generated records incl. blank lines (skipped by the file source); records = non-blank lines "
             "the worker received; written = records found in the graph (re-deliveries included); crashes = worker "
             "runs that raised (GraphDown included; retry_limit_s=15); good_lost / good_duplicated = good posts "
             "missing from the graph / post ids with more than one node; embedded FalkorDB, fresh graph per chunk, "
             "light extractors from tests/fuzz_posts.py (no model), image policy: 256 KiB, 1 MP, 64 px; "
             f"known-bad characters kept out of valid posts: {fp.KNOWN_BAD_CHARS!r}")
    if not args.no_result:
        write_result("fuzz", metrics, notes)
    else:
        print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
