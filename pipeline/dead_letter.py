"""Dead letters: every post that cannot be processed, with the reason, kept.

A dead letter holds the original payload untouched (as UTF-8 text when it
decodes, else base64), the stage that failed, the reason and where the record
came from, so it can be inspected and replayed. Sinks are flushed before the
source commits, so a rejected post is never lost either.
"""
from __future__ import annotations

import base64
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .sources.base import SourceRecord


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # parse | image | extract | schema
    reason: str
    origin: str
    payload: str
    payload_encoding: str  # utf-8 | base64
    failed_at: str

    @classmethod
    def of(cls, record: SourceRecord, stage: str, reason: str) -> "DeadLetter":
        try:
            payload, encoding = record.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(record.payload).decode("ascii"), "base64"
        now = datetime.now(timezone.utc).isoformat()
        return cls(stage, reason, record.origin, payload, encoding, now)

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
    """JSON lines in a local file (embedded mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")

    def send(self, letter: DeadLetter) -> None:
        self._fh.write(letter.to_json() + b"\n")

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush()
        self._fh.close()


class KafkaDeadLetterSink(DeadLetterSink):
    """A dead-letter topic; the reason also travels as record headers."""

    def __init__(self, cfg) -> None:
        from kafka import KafkaProducer

        self._topic = cfg.dead_letter_topic
        self._producer = KafkaProducer(acks="all", max_request_size=cfg.max_message_bytes, **cfg.client_options())
        self._futures: list = []

    def send(self, letter: DeadLetter) -> None:
        headers = [("mkg.stage", letter.stage.encode()), ("mkg.reason", letter.reason.encode()[:1000])]
        self._futures.append(self._producer.send(self._topic, value=letter.to_json(), headers=headers))

    def flush(self) -> None:
        self._producer.flush()
        futures, self._futures = self._futures, []
        for fut in futures:
            fut.get(timeout=30)  # raise if the broker did not take it

    def close(self) -> None:
        self.flush()
        self._producer.close()


def read_dead_letters(path: str | Path) -> list[DeadLetter]:
    path = Path(path)
    if not path.exists():
        return []
    return [DeadLetter(**json.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]
