"""The worker loop: poll -> validate -> extract -> write graph -> commit.

Offsets are committed only after the graph write (and the dead-letter and
observation flushes) succeeded; writes are idempotent MERGEs. Together: at-least-once delivery,
exactly-once triples. A graph outage stalls the loop with backoff and commits
nothing until the graph is back; SIGTERM finishes the current batch first.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tenacity import Retrying, retry_if_exception_type, stop_any, wait_exponential

from extractors.base import EntityMention, ExtractionInput, Extractor
from extractors.schema import IDENTIFIER, SchemaViolation
from graph_store.base import GraphStore, GraphUnavailable
from graph_store.records import GraphBatch

from .dead_letter import DeadLetter, DeadLetterSink
from .metrics import WorkerMetrics
from .observations import ObservationSink, observations_of
from .post import InvalidPost, Post, parse_post
from .sources.base import Source, SourceRecord
from .to_graph import add_post

log = logging.getLogger(__name__)


def given_entities(post: Post) -> tuple[EntityMention, ...] | None:
    """Entity spans the post carries (gold annotations), for extractors that relate them."""
    if post.annotations is None or not post.annotations.entities:
        return None
    return tuple(EntityMention(post.text[e.start:e.end], e.type, e.start, e.end, 1.0)
                 for e in post.annotations.entities)


class Stopped(Exception):
    """Shutdown was requested while waiting for the graph."""


@dataclass
class _Item:
    record: SourceRecord
    post: Post
    input: ExtractionInput


class Worker:
    def __init__(
        self,
        source: Source,
        extractor: Extractor,
        graph: GraphStore,
        dead_letters: DeadLetterSink,
        batch_size: int = 64,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        observations: ObservationSink | None = None,
        accept: Callable[[Post], bool] | None = None,
    ) -> None:
        self.accept = accept
        self.source = source
        self.extractor = extractor
        self.graph = graph
        self.dead_letters = dead_letters
        self.observations = observations  # optional: what the models were unsure about (novelty signal)
        self.batch_size = batch_size
        self.metrics = WorkerMetrics()
        self._extend_schema()
        self._stop = threading.Event()
        self._retry_wait = wait_exponential(multiplier=retry_initial_s, max=retry_max_s)

    def stop(self, *_args) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_records: int | None = None, idle_timeout_s: float | None = None, progress=None) -> WorkerMetrics:
        """Process until stopped, the source is exhausted, ``max_records`` were
        seen, or nothing arrived for ``idle_timeout_s``."""
        last_data = time.monotonic()
        while not self._stop.is_set() and not self.source.exhausted:
            if max_records is not None and self.metrics.records_received >= max_records:
                break
            limit = self.batch_size if max_records is None else min(self.batch_size, max_records - self.metrics.records_received)
            records = self.source.poll(limit)
            if not records:
                if idle_timeout_s is not None and time.monotonic() - last_data > idle_timeout_s:
                    break
                continue
            last_data = time.monotonic()
            try:
                self.process(records)
            except Stopped:
                log.warning("stopped while the graph was unavailable; batch not committed", extra={"records": len(records)})
                break
            if progress is not None:
                progress.update(len(records))
        return self.metrics

    def process(self, records: list[SourceRecord]) -> None:
        """Handle one batch end to end, committing it last."""
        self.metrics.records_received += len(records)
        try:
            if self.extractor.refresh():
                self._extend_schema()
        except Exception:  # a broken new version must not stop the stream
            log.exception("model reload failed; keeping the loaded model")
        items = [item for item in (self._prepare(r) for r in records) if item is not None]
        batch = GraphBatch()
        for item, extraction in self._extract(items):
            try:
                add_post(batch, item.post, extraction, self.extractor.model_version, self.graph.schema)
            except SchemaViolation as exc:
                self._dead(item.record, "schema", str(exc))
                continue
            self._observe(item, extraction)
        self._write(batch)
        self.dead_letters.flush()
        if self.observations is not None:
            self.observations.flush()
        self.source.commit(records)
        self.metrics.batches_committed += 1
        self.metrics.posts_written += len(batch.posts)
        self.metrics.entities_written += len(batch.entities)
        self.metrics.facts_written += len(batch.facts)
        log.info("batch committed", extra={"records": len(records), "posts": len(batch.posts),
                                           "facts": len(batch.facts), "dead_lettered": self.metrics.dead_lettered})

    def _observe(self, item: _Item, extraction) -> None:
        if self.observations is None or not extraction.uncertain:
            return
        obs = observations_of(item.post.id, item.post.created_at_iso, item.post.text, extraction,
                              self.extractor.model_version, self.observations.now_iso())
        self.observations.send(obs)
        self.metrics.observations_recorded += len(obs)

    def _extend_schema(self) -> None:
        """A promoted model may know classes that emerged after start-up; let them in."""
        ents, rels = self.extractor.known_types()
        bad = sorted(n for n in ents | rels if not IDENTIFIER.match(n))
        if bad:  # never let a model's label list widen the schema with unsafe names
            log.error("model emits names that are not safe identifiers; not added to the schema", extra={"names": bad})
        self.graph.schema = self.graph.schema.extended({n for n in ents if n not in bad}, {n for n in rels if n not in bad})

    def _prepare(self, record: SourceRecord) -> _Item | None:
        try:
            post = parse_post(record.payload)
        except InvalidPost as exc:
            self._dead(record, "parse", exc.reason)
            return None
        if self.accept is not None and not self.accept(post):
            self.metrics.skipped += 1
            return None
        image = None
        if post.image is not None:
            try:
                image = post.image.open()
            except (OSError, ValueError) as exc:
                self._dead(record, "image", f"image could not be loaded: {exc}")
                return None
        return _Item(record, post, ExtractionInput(post.id, post.text, image, given_entities(post)))

    def _extract(self, items: list[_Item]):
        """Extract the batch; if it fails, retry post by post to isolate the bad ones."""
        if not items:
            return []
        try:
            return list(zip(items, self.extractor.extract([i.input for i in items]), strict=True))
        except Exception:
            log.warning("batch extraction failed; isolating posts", exc_info=True)
        out = []
        for item in items:
            try:
                out.append((item, self.extractor.extract([item.input])[0]))
            except Exception as exc:  # any model failure is this post's dead letter
                self._dead(item.record, "extract", f"{type(exc).__name__}: {exc}")
        return out

    def _write(self, batch: GraphBatch) -> None:
        if not batch.posts:
            return
        try:
            self._write_with_retry(batch)
        except GraphUnavailable:
            if self._stop.is_set():
                raise Stopped() from None
            raise

    def _write_with_retry(self, batch: GraphBatch) -> None:
        for attempt in Retrying(
            retry=retry_if_exception_type(GraphUnavailable),
            wait=self._retry_wait,
            stop=stop_any(lambda _state: self._stop.is_set()),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        ):
            with attempt:
                self.graph.write(batch)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stopped()

    def _log_retry(self, state) -> None:
        self.metrics.graph_retries += 1
        log.warning("graph unavailable; retrying", extra={"attempt": state.attempt_number,
                                                         "error": str(state.outcome.exception())})

    def _dead(self, record: SourceRecord, stage: str, reason: str) -> None:
        self.metrics.dead_letters[stage] += 1
        self.dead_letters.send(DeadLetter.of(record, stage, reason))
        log.warning("dead-lettered", extra={"stage": stage, "reason": reason[:300], "origin": record.origin})
