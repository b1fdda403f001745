"""Posts from a Kafka topic: consumer group, manual commits after the graph write."""
from __future__ import annotations

import logging
from typing import Sequence

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from ..config import KafkaConfig
from .base import Source, SourceRecord

log = logging.getLogger(__name__)


class KafkaSource(Source):
    def __init__(self, cfg: KafkaConfig, batch_size: int) -> None:
        self._cfg = cfg
        self._consumer = KafkaConsumer(
            cfg.topic,
            group_id=cfg.group_id,
            enable_auto_commit=False,  # commit only what reached the graph
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            max_poll_interval_ms=cfg.max_poll_interval_ms,
            max_partition_fetch_bytes=cfg.max_message_bytes,
            fetch_max_bytes=max(cfg.max_message_bytes, 50 * 1024 * 1024),
            **cfg.client_options(),
        )

    def poll(self, max_records: int) -> list[SourceRecord]:
        batches = self._consumer.poll(timeout_ms=self._cfg.poll_timeout_ms, max_records=max_records)
        out = []
        for tp, messages in batches.items():
            for m in messages:
                out.append(SourceRecord(m.value or b"", (tp.topic, tp.partition, m.offset),
                                        f"{tp.topic}[{tp.partition}]@{m.offset}",
                                        m.timestamp / 1000 if m.timestamp and m.timestamp > 0 else None))
        return out

    def lag(self) -> dict[tuple[str, int], int]:
        """High watermark minus this member's position, per partition it owns (Kafka's records-lag).

        Both come from the last fetch (no extra round trip); a partition not
        fetched since it was assigned is left out rather than guessed.
        """
        out = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=0)  # known locally once fetched
            except KafkaError:
                continue
            if position is not None:
                out[(tp.topic, tp.partition)] = max(0, high - position)
        return out

    def commit(self, records: Sequence[SourceRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for rec in records:
            topic, partition, offset = rec.position
            tp = TopicPartition(topic, partition)
            offsets[tp] = max(offsets.get(tp, -1), offset + 1)
        if not offsets:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except CommitFailedError as exc:
            # The group rebalanced: another member re-reads these records and,
            # since writes are idempotent, the graph stays exact.
            log.warning("offset commit failed after rebalance; records will be redelivered", extra={"error": str(exc)})

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except KafkaError:
            pass
