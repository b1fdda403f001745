"""Dead letters: every post that cannot be processed, with the reason, kept.

A dead letter holds the original payload untouched (as UTF-8 text when it
decodes, else base64), the stage that failed, the reason and where the record
came from, so it can be inspected and replayed. Sinks are flushed before the
source commits, so a rejected post is never lost either.

Each letter is keyed by its record's source position. A crash after the
flush but before the commit re-delivers the batch; the sinks skip keys they
already hold, so a post is dead-lettered once, not once per restart.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from mkg_common.clock import utc_iso
from pathlib import Path

from .sources.base import SourceRecord


STAGES = ("parse", "image", "conflict", "extract", "schema", "graph")


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # one of STAGES
    reason: str
    origin: str
    payload: str
    payload_encoding: str  # utf-8 | base64
    failed_at: str
    key: str = ""  # the record's source position (SourceRecord.key)
    error_type: str = ""  # the exception's class name, when one was raised
    payload_truncated: bool = False  # the payload did not fit the dead-letter topic; see ``payload_sha256``
    payload_sha256: str = ""  # of the whole original payload, when it was truncated

    def fitting(self, max_bytes: int) -> "DeadLetter":
        """This letter, its payload cut so its JSON fits in ``max_bytes``.

        A record as large as the source topic allows can outgrow the
        dead-letter topic once escaped into JSON (a control character takes 6
        bytes); refusing it would stop the worker on that record forever. The
        cut letter keeps the stage, reason and origin, the payload's head and
        the hash of the whole: the record itself stays at its origin.
        """
        size = len(self.to_json())
        if size <= max_bytes:
            return self
        digest = hashlib.sha256(self.original_payload()).hexdigest()
        keep = int(len(self.payload) * (max_bytes - 2048) / size)  # characters escape to up to 6 bytes
        while True:
            keep = max(0, keep - keep % 4)  # whole base64 quanta
            cut = replace(self, payload=self.payload[:keep], payload_truncated=True, payload_sha256=digest)
            if len(cut.to_json()) <= max_bytes or keep == 0:
                return cut
            keep //= 2

    @classmethod
    def of(cls, record: SourceRecord, stage: str, reason: str, error_type: str = "") -> "DeadLetter":
        try:
            payload, encoding = record.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(record.payload).decode("ascii"), "base64"
        now = utc_iso()
        return cls(stage, reason, record.origin, payload, encoding, now, record.key, error_type)

    def original_payload(self) -> bytes:
        return base64.b64decode(self.payload) if self.payload_encoding == "base64" else self.payload.encode("utf-8")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode("utf-8")


class DeadLetterSink(ABC):
    @abstractmethod
    def send(self, letter: DeadLetter) -> None: ...

    @abstractmethod
    def flush(self) -> None:
        """Make everything sent durable; called before the source commits."""

    def close(self) -> None:
        self.flush()


class FileDeadLetterSink(DeadLetterSink):
    """JSON lines in a local file (embedded mode).

    On open it drops a torn last line (a crash mid-write) and learns the keys
    already written, so re-delivered records are not written twice.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._keys = _repair_and_read_keys(self.path)
            self._fh = open(self.path, "ab")
        except OSError as exc:
            raise OSError(f"dead-letter file {self.path} cannot be written: {exc.strerror or exc}") from exc

    def send(self, letter: DeadLetter) -> None:
        if letter.key and letter.key in self._keys:
            return
        self._keys.add(letter.key)
        self._fh.write(letter.to_json() + b"\n")

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush()
        self._fh.close()


class KafkaDeadLetterSink(DeadLetterSink):
    """A dead-letter topic; the reason also travels as record headers.

    Records are keyed by source position. At start-up the sink reads the keys
    already on the topic (keys only; the topic holds failures, not the stream),
    so a worker restarted over an uncommitted batch does not send its dead
    letters again. Members of one group that take over each other's
    partitions may still repeat a letter; the key makes it recognisable, and a
    compacted dead-letter topic keeps one per key.
    """

    def __init__(self, cfg) -> None:
        from kafka import KafkaProducer

        self._topic = cfg.dead_letter_topic
        self._max_bytes = cfg.max_message_bytes - 64 * 1024  # room for the key, headers and record framing
        self._keys = _topic_keys(cfg)
        self._producer = KafkaProducer(acks="all", max_request_size=cfg.max_message_bytes, **cfg.client_options())
        self._futures: list = []

    def send(self, letter: DeadLetter) -> None:
        if letter.key and letter.key in self._keys:
            return
        self._keys.add(letter.key)
        letter = letter.fitting(self._max_bytes)
        headers = [("mkg.stage", letter.stage.encode()), ("mkg.reason", letter.reason.encode()[:1000])]
        self._futures.append(self._producer.send(self._topic, key=letter.key.encode() or None,
                                                 value=letter.to_json(), headers=headers))

    def flush(self) -> None:
        self._producer.flush()
        futures, self._futures = self._futures, []
        for fut in futures:
            fut.get(timeout=30)  # raise if the broker did not take it

    def close(self) -> None:
        self.flush()
        self._producer.close()


def _topic_keys(cfg) -> set[str]:
    """Keys of every record on the dead-letter topic (empty if it does not exist yet)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, consumer_timeout_ms=2000,
                             max_partition_fetch_bytes=cfg.max_message_bytes, **cfg.client_options())
    try:
        partitions = consumer.partitions_for_topic(cfg.dead_letter_topic) or set()
        tps = [TopicPartition(cfg.dead_letter_topic, p) for p in sorted(partitions)]
        if not tps:
            return set()
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        keys: set[str] = set()
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the keys of dead-letter topic {cfg.dead_letter_topic} in 120 s")
            got = consumer.poll(timeout_ms=1000)
            for messages in got.values():
                keys.update(m.key.decode("utf-8", "replace") for m in messages if m.key)
        return keys
    finally:
        consumer.close()


def _repair_and_read_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a torn write: the record was never committed, it comes again
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
        data = data[: data.rfind(b"\n") + 1]
    keys = set()
    for line in data.splitlines():
        try:
            keys.add(json.loads(line).get("key", ""))
        except (ValueError, AttributeError):  # not a letter this sink wrote; leave it be
            continue
    keys.discard("")
    return keys


def read_dead_letters(path: str | Path) -> list[DeadLetter]:
    path = Path(path)
    if not path.exists():
        return []
    return [DeadLetter(**json.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]
