"""Observations: what the extractors were unsure about, kept for novelty discovery.

The worker records every pair the relation model left unrelated (``None``) or
below its threshold, and every tagged span below the span threshold, as one
JSON line in a day file (``<dir>/YYYY-MM-DD.jsonl``, by the time the worker
saw it, so a backfill of old posts still reaches the next discovery run).
``continual.candidates`` reads a time window of them back and clusters them.

Like dead letters, observations are flushed (fsync) before the source
commits; a crash between flush and commit re-processes the batch and writes
the same observations again, which :func:`read_observations` removes by key.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from extractors.base import EntityMention, Extraction, UncertainPair, UncertainSpan
from extractors.spans import word_span
from mkg_common.clock import utc_iso, utc_now

log = logging.getLogger(__name__)

PAIR, SPAN = "pair", "span"


def parse_utc(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


@dataclass(frozen=True)
class Observation:
    """One uncertain pair (``kind='pair'``) or span (``kind='span'``) of one post.

    ``tokens`` are the post's words (the split the models and the labelled
    store use); ``head``/``tail`` are [start, end) word spans, so a confirmed
    observation becomes a labelled example without re-tokenising.
    ``entities`` are all the post's entity spans ``[start, end, type]``: a
    confirmed span needs them to become a complete MNER example.
    """

    kind: str
    post_id: str
    post_time: str  # the post's created_at (UTC ISO)
    observed_at: str  # when the worker recorded it (UTC ISO); partitions and windows use this
    text: str
    tokens: tuple[str, ...]
    head: tuple[int, int]
    head_text: str
    head_type: str
    tail: tuple[int, int] | None
    tail_text: str | None
    tail_type: str | None
    label: str  # the model's best label (a relation, "None", or the span's type)
    confidence: float
    model_version: str
    entities: tuple[tuple[int, int, str], ...] = ()

    @property
    def key(self) -> str:
        """Identity across re-deliveries: the same post, kind and spans."""
        tail = f"{self.tail[0]}-{self.tail[1]}" if self.tail else ""
        return f"{self.post_id}|{self.kind}|{self.head[0]}-{self.head[1]}|{tail}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Observation":
        d = dict(d)
        d["tokens"] = tuple(d["tokens"])
        d["head"] = tuple(d["head"])
        d["tail"] = tuple(d["tail"]) if d.get("tail") is not None else None
        d["entities"] = tuple(tuple(e) for e in d.get("entities", ()))
        return cls(**d)


def _word_span(words: list[tuple[str, int, int]], m: EntityMention) -> tuple[int, int] | None:
    return word_span(words, m.start, m.end)


def observations_of(post_id: str, post_time: str, text: str, extraction: Extraction, model_version: str,
                    observed_at: str) -> list[Observation]:
    """The extraction's uncertain pairs and spans as observations (words from the shared split)."""
    if not extraction.uncertain:
        return []
    from extractors.spans import words_with_offsets

    words = words_with_offsets(text)
    tokens = tuple(w for w, _, _ in words)
    entities = tuple((s[0], s[1], m.type) for m in extraction.entities if (s := _word_span(words, m)) is not None)
    out: list[Observation] = []
    for u in extraction.uncertain:
        if isinstance(u, UncertainPair):
            hs, ts = _word_span(words, u.head), _word_span(words, u.tail)
            if hs is None or ts is None:
                continue
            out.append(Observation(PAIR, post_id, post_time, observed_at, text, tokens, hs, u.head.text,
                                   u.head.type, ts, u.tail.text, u.tail.type, u.label, float(u.confidence),
                                   model_version, entities))
        elif isinstance(u, UncertainSpan):
            span = _word_span(words, u.mention)
            if span is None:
                continue
            out.append(Observation(SPAN, post_id, post_time, observed_at, text, tokens, span, u.mention.text,
                                   u.mention.type, None, None, None, u.mention.type, float(u.confidence),
                                   model_version, entities))
    return out


def day_file(root: Path, day: date) -> Path:
    return root / f"{day.isoformat()}.jsonl"


class ObservationSink:
    """Buffers observations and appends them to day files on :meth:`flush`.

    One ``write`` per file and flush under an exclusive lock, so several
    workers can share the folder without interleaving lines.
    """

    def __init__(self, root: str | Path, clock: Callable[[], datetime] | None = None) -> None:
        self.root = Path(root)
        self.clock = clock or utc_now
        self._buffer: list[Observation] = []
        self.written = 0

    def now_iso(self) -> str:
        return utc_iso(self.clock())

    def send(self, observations: Iterable[Observation]) -> None:
        self._buffer.extend(observations)

    def flush(self) -> None:
        """Make everything sent durable; called before the source commits."""
        if not self._buffer:
            return
        by_day: dict[date, list[str]] = {}
        for obs in self._buffer:
            by_day.setdefault(parse_utc(obs.observed_at).date(), []).append(obs.to_json())
        self.root.mkdir(parents=True, exist_ok=True)
        for day, lines in sorted(by_day.items()):
            fd = os.open(day_file(self.root, day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the lock
        n = len(self._buffer)
        self._buffer.clear()
        self.written += n
        log.debug("observations flushed", extra={"observations": n, "days": len(by_day)})

    def close(self) -> None:
        self.flush()


def _days(start: datetime, end: datetime) -> Iterator[date]:
    day = start.astimezone(timezone.utc).date()
    while day <= end.astimezone(timezone.utc).date():
        yield day
        day += timedelta(days=1)


def read_observations(root: str | Path, start: datetime, end: datetime) -> list[Observation]:
    """Observations recorded in ``[start, end)``, one per key (re-deliveries removed), in time order.

    A torn last line (a crash mid-write, before the commit) is skipped with a warning.
    """
    root = Path(root)
    seen: dict[str, Observation] = {}
    bad = 0
    for day in _days(start, end):
        path = day_file(root, day)
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    obs = Observation.from_dict(json.loads(line))
                except (ValueError, TypeError, KeyError):
                    bad += 1
                    continue
                if start <= parse_utc(obs.observed_at) < end:
                    seen.setdefault(obs.key, obs)
    if bad:
        log.warning("unreadable observation lines skipped", extra={"lines": bad, "dir": str(root)})
    return sorted(seen.values(), key=lambda o: (o.observed_at, o.key))
