"""The worker loop: poll -> validate -> extract -> write graph -> commit.

Batches. A graph batch is gathered from as many polls as it takes to reach
``write_batch`` records, or until ``linger_s`` has passed since its first
record, or until the source has nothing waiting (the Neo4j Kafka
connector's batch size and linger): large batches make the graph write
cheap per triple under load, and the linger bounds the latency when the
stream is slow.

Delivery contract. Offsets are committed only after the graph write (and the
dead-letter and observation flushes) succeeded; writes are idempotent MERGEs.
Together: at-least-once delivery, exactly-once triples. SIGTERM finishes the
current batch first.

Fault boundary. Whatever goes wrong with one post (a payload that does not
parse, an image that is refused, a model that raises, a graph that rejects
its rows, another post already stored under its id) sends that post to the
dead letters with the stage, the exception and the original payload, and the
rest of the batch goes on. Dead letters are keyed by source position, so a
crash-restart that re-reads an uncommitted batch does not write them twice.
A post is therefore in the graph or in the dead letters, never both, never
neither.

Only the graph being *unavailable* (an outage, a full disk) is not a post's
fault: the worker backs off and retries the batch for up to
``retry_limit_s``, commits nothing meanwhile, and then stops with
:class:`GraphDown` rather than skip data.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, stop_any, wait_exponential

from extractors.base import EntityMention, Extraction, ExtractionInput, Extractor
from graph_store.schema import IDENTIFIER, SchemaViolation
from graph_store.base import GraphStore, GraphUnavailable
from graph_store.records import GraphBatch

from .dead_letter import DeadLetter, DeadLetterSink
from .images import ImagePolicy, ImageRejected, LazyImage
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


def given_relations(post: Post) -> tuple[tuple[int, int, str], ...] | None:
    """Relations the post carries, as (head, tail) indices into :func:`given_entities` and a label."""
    if post.annotations is None or not post.annotations.relations:
        return None
    index = {e.id: i for i, e in enumerate(post.annotations.entities)}
    return tuple((index[r.head], index[r.tail], r.type) for r in post.annotations.relations)


def extraction_input(post: Post, image: Any = None) -> ExtractionInput:
    """What an extractor sees of ``post``: text, decoded image, and what the post already says."""
    return ExtractionInput(post.id, post.text, image, given_entities(post), given_relations(post))


class Stopped(Exception):
    """Shutdown was requested while waiting for the graph."""


class GraphDown(RuntimeError):
    """The graph stayed unavailable for longer than the retry limit; nothing
    past the failed batch was committed, so a restart resumes there."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclass
class _Item:
    record: SourceRecord
    post: Post
    image: LazyImage | None = None  # checked reference; decoded only for extractors that use images
    decoded: Any = None  # the reduced RGB image, held for one batch's extraction


@dataclass
class _Rows:
    """One post's graph rows, kept apart so a rejected batch can be split."""

    item: _Item
    batch: GraphBatch
    extraction: Extraction


def _one_version_per_id(items: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """Split off later, different versions of an id already in ``items``.

    Whether a later version conflicts depends on whether the earlier one
    reached the graph, which is only known after its round is written: a post
    that failed (say, at extraction) and its fixed re-send in one batch must
    end as "dead letter, written", exactly as if they came in two batches.
    Identical copies stay together (a re-delivery is not a conflict).
    """
    first: dict[str, str] = {}
    deferred: set[str] = set()  # ids with a version in ``later``: nothing overtakes it
    now, later = [], []
    for item in items:
        pid, digest = item.post.id, item.post.content_hash
        if pid in deferred or first.setdefault(pid, digest) != digest:
            deferred.add(pid)
            later.append(item)
        else:
            now.append(item)
    return now, later


def _merged(parts: list[_Rows]) -> GraphBatch:
    out = GraphBatch()
    for part in parts:
        out.posts.extend(part.batch.posts)
        out.entities.extend(part.batch.entities)
        out.facts.extend(part.batch.facts)
    return out


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
        retry_limit_s: float | None = 300.0,
        images: ImagePolicy | None = None,
        stop: threading.Event | None = None,
        write_batch: int | None = None,
        linger_s: float = 0.5,
    ) -> None:
        self.accept = accept
        self.source = source
        self.extractor = extractor
        self.graph = graph
        self.dead_letters = dead_letters
        self.observations = observations  # optional: what the models were unsure about (novelty signal)
        self.batch_size = batch_size  # records per poll
        self.write_batch = write_batch or batch_size  # records per graph write (and commit)
        self.linger_s = linger_s
        self.images = images or ImagePolicy()
        self.metrics = WorkerMetrics(model_version=extractor.model_version)
        self._extend_schema()
        self._stop = stop or threading.Event()
        self._retry_wait = wait_exponential(multiplier=retry_initial_s, max=retry_max_s)
        self._retry_limit_s = retry_limit_s

    def stop(self, *_args) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_records: int | None = None, idle_timeout_s: float | None = None, progress=None) -> WorkerMetrics:
        """Process until stopped, the source is exhausted, ``max_records`` were
        seen, or nothing arrived for ``idle_timeout_s``. Raises :class:`GraphDown`
        when the graph stays unavailable past the retry limit."""
        last_data = time.monotonic()
        while not self._stop.is_set() and not self.source.exhausted:
            self.metrics.last_loop = time.monotonic()
            if max_records is not None and self.metrics.records_received >= max_records:
                break
            records = self._gather(max_records)
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

    def _gather(self, max_records: int | None) -> list[SourceRecord]:
        """Poll until ``write_batch`` records, ``linger_s`` after the first, or an empty poll."""
        target = self.write_batch
        if max_records is not None:
            target = min(target, max_records - self.metrics.records_received)
        records: list[SourceRecord] = []
        first_at = None
        while len(records) < target and not self._stop.is_set():
            got = self.source.poll(min(self.batch_size, target - len(records)))
            self.metrics.source_ok = True  # the source answered (with records or without)
            if not got:
                break  # nothing waiting now: write what there is instead of lingering on an idle stream
            records += got
            first_at = first_at if first_at is not None else time.monotonic()
            if time.monotonic() - first_at >= self.linger_s or self.source.exhausted:
                break
        return records

    def process(self, records: list[SourceRecord]) -> None:
        """Handle one batch end to end, committing it last."""
        self.metrics.records_received += len(records)
        try:
            if self.extractor.refresh():
                self._extend_schema()
        except Exception:  # a broken new version must not stop the stream
            log.exception("model reload failed; keeping the loaded model")
        with self.metrics.time_stage("parse"):
            pending = [item for item in (self._prepare(r) for r in records) if item is not None]
        written: list[_Rows] = []
        while pending:  # one round unless the batch holds other versions of an id (see _one_version_per_id)
            items, pending = _one_version_per_id(pending)
            written += self._write_round(self._without_conflicts(items))
        with self.metrics.time_stage("commit"):
            self.dead_letters.flush()
            if self.observations is not None:
                self.observations.flush()
            self.source.commit(records)
        self.metrics.committed([r.produced_at for r in records])
        self.metrics.lag = self.source.lag()
        self.metrics.transaction_retries = self.graph.transaction_retries
        self.metrics.model_version = self.extractor.model_version
        batch = _merged(written)
        self.metrics.batches_committed += 1
        self.metrics.posts_written += len(batch.posts)
        self.metrics.entities_written += len(batch.entities)
        self.metrics.facts_written += len(batch.facts)
        log.info("batch committed", extra={"records": len(records), "posts": len(batch.posts),
                                           "facts": len(batch.facts), "dead_lettered": self.metrics.dead_lettered})

    def _write_round(self, items: list[_Item]) -> list[_Rows]:
        parts = []
        with self.metrics.time_stage("extract"):
            extracted = self._extract(items)
        for item, extraction in extracted:
            rows = self._rows(item, extraction)
            if rows is not None:
                parts.append(rows)
        with self.metrics.time_stage("graph"):
            written = self._write_isolating(parts)
        for part in written:
            self._observe(part.item, part.extraction)
        return written

    # -- stages, each the fault boundary of one post ------------------------
    def _prepare(self, record: SourceRecord) -> _Item | None:
        """Parse, filter, and check the image reference (no pixels are read here)."""
        try:
            post = parse_post(record.payload)
        except InvalidPost as exc:
            self._dead(record, "parse", exc.reason, exc)
            return None
        except Exception as exc:  # a validator bug must not stop the stream either
            self._dead(record, "parse", _describe(exc), exc)
            return None
        try:
            if self.accept is not None and not self.accept(post):
                self.metrics.skipped += 1
                return None
        except Exception as exc:
            self._dead(record, "parse", f"filter failed: {_describe(exc)}", exc)
            return None
        item = _Item(record, post)
        if post.image is not None:
            try:
                item.image = LazyImage.of(post.image, self.images)
                item.image.check()
            except ImageRejected as exc:
                self._dead(record, "image", exc.reason, exc)
                return None
            except Exception as exc:
                self._dead(record, "image", _describe(exc), exc)
                return None
        return item

    def _without_conflicts(self, items: list[_Item]) -> list[_Item]:
        """Keep the stored version of a post id: a different post under an id
        already in the graph is dead-lettered with stage ``conflict``. An
        identical re-delivery stays: writing it again changes nothing."""
        if not items:
            return items
        stored = self._with_graph_retry(lambda: self.graph.post_hashes(sorted({i.post.id for i in items})))
        out = []
        for item in items:
            post = item.post
            if post.id in stored:
                old_hash, old_text = stored[post.id]
                same = old_hash == post.content_hash if old_hash is not None else old_text == post.text
                if not same:
                    self._dead(item.record, "conflict", f"post id {post.id!r} is already stored with other "
                                                        "content; the first version is kept")
                    continue
            out.append(item)
        return out

    def _extract(self, items: list[_Item]) -> list[tuple[_Item, Extraction]]:
        """Extract the batch; if it fails, retry post by post to isolate the bad ones.

        Images are decoded only for an extractor that uses them, reduced as
        they are decoded, and dropped when this returns.
        """
        if self.extractor.uses_images:
            items = [item for item in items if self._load_image(item)]
        try:
            return self._extract_isolating(items)
        finally:
            for item in items:
                item.decoded = None

    def _extract_isolating(self, items: list[_Item]) -> list[tuple[_Item, Extraction]]:
        if not items:
            return []
        try:
            return list(zip(items, self.extractor.extract([self._input(i) for i in items]), strict=True))
        except Exception:
            log.warning("batch extraction failed; isolating posts", exc_info=True)
        out = []
        for item in items:
            try:
                (extraction,) = self.extractor.extract([self._input(item)])
                out.append((item, extraction))
            except Exception as exc:  # any model failure is this post's dead letter
                self._dead(item.record, "extract", _describe(exc), exc)
        return out

    def _load_image(self, item: _Item) -> bool:
        if item.image is None:
            return True
        try:
            item.decoded = item.image.load()
            return True
        except ImageRejected as exc:
            self._dead(item.record, "image", exc.reason, exc)
        except Exception as exc:  # MemoryError included: one huge image is one post's problem
            self._dead(item.record, "image", _describe(exc), exc)
        return False

    @staticmethod
    def _input(item: _Item) -> ExtractionInput:
        return extraction_input(item.post, item.decoded)

    def _rows(self, item: _Item, extraction: Extraction) -> _Rows | None:
        batch = GraphBatch()
        try:
            add_post(batch, item.post, extraction, self.extractor.model_version, self.graph.schema)
        except SchemaViolation as exc:
            self._dead(item.record, "schema", str(exc), exc)
            return None
        except Exception as exc:
            self._dead(item.record, "graph", f"rows could not be built: {_describe(exc)}", exc)
            return None
        return _Rows(item, batch, extraction)

    def _write_isolating(self, parts: list[_Rows]) -> list[_Rows]:
        """Write all rows in one batch; if the graph rejects it, split it in
        halves until the posts it rejects are found and dead-lettered.

        Splitting is safe because every statement is an idempotent MERGE: a
        half written before its sibling failed is simply written again.
        """
        if not parts:
            return []
        try:
            self._with_graph_retry(lambda: self.graph.write(_merged(parts)))
            return parts
        except (GraphUnavailable, Stopped, GraphDown):
            raise
        except Exception as exc:
            if len(parts) == 1:
                self._dead(parts[0].item.record, "graph", _describe(exc), exc)
                return []
            log.warning("graph rejected a batch; splitting it to find the post",
                        extra={"posts": len(parts), "error": _describe(exc)[:300]})
        mid = len(parts) // 2
        return self._write_isolating(parts[:mid]) + self._write_isolating(parts[mid:])

    def _observe(self, item: _Item, extraction: Extraction) -> None:
        if self.observations is None or not extraction.uncertain:
            return
        try:
            obs = observations_of(item.post.id, item.post.created_at_iso, item.post.text, extraction,
                                  self.extractor.model_version, self.observations.now_iso())
            self.observations.send(obs)
        except Exception:  # the novelty signal is a side channel; the post is already written
            log.exception("observations of a post could not be recorded", extra={"post_id": item.post.id})
            return
        self.metrics.observations_recorded += len(obs)

    def _extend_schema(self) -> None:
        """A promoted model may know classes that emerged after start-up; let them in."""
        ents, rels = self.extractor.known_types()
        bad = sorted(n for n in ents | rels if not IDENTIFIER.match(n))
        if bad:  # never let a model's label list widen the schema with unsafe names
            log.error("model emits names that are not safe identifiers; not added to the schema", extra={"names": bad})
        self.graph.schema = self.graph.schema.extended({n for n in ents if n not in bad}, {n for n in rels if n not in bad})

    # -- the graph being unavailable is nobody's fault: wait, up to a limit --
    def _with_graph_retry(self, call):
        stops = [lambda _state: self._stop.is_set()]
        if self._retry_limit_s is not None:
            stops.append(stop_after_delay(self._retry_limit_s))
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(GraphUnavailable),
                wait=self._retry_wait,
                stop=stop_any(*stops),
                sleep=self._sleep,
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    result = call()
                    self.metrics.graph_ok = True
                    return result
        except GraphUnavailable as exc:
            if self._stop.is_set():
                raise Stopped() from None
            raise GraphDown(f"the graph has been unavailable for more than {self._retry_limit_s:g} s "
                            f"({exc}); stopping without committing the current batch") from exc

    def _sleep(self, seconds: float) -> None:
        self.metrics.last_loop = time.monotonic()  # waiting for the graph is alive, not stuck
        if self._stop.wait(seconds):
            raise Stopped()
        self.metrics.last_loop = time.monotonic()

    def _log_retry(self, state) -> None:
        self.metrics.graph_retries += 1
        self.metrics.graph_ok = False
        log.warning("graph unavailable; retrying", extra={"attempt": state.attempt_number,
                                                         "error": str(state.outcome.exception())})

    def _dead(self, record: SourceRecord, stage: str, reason: str, exc: BaseException | None = None) -> None:
        self.metrics.dead_letters[stage] += 1
        self.dead_letters.send(DeadLetter.of(record, stage, reason, type(exc).__name__ if exc else ""))
        log.warning("dead-lettered", extra={"stage": stage, "reason": reason[:300], "origin": record.origin})
