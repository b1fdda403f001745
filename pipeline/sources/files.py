"""Posts from JSONL files (plain or gzip): the embedded log and backfill archives.

One class serves both: the embedded default consumes a single log file (and
can keep tailing it), backfill walks archive files. The committed position
per file is a line count in a small JSON checkpoint, replaced atomically, so
a restarted run resumes after the last committed line and never skips one.
"""
from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import IO, Iterable, Sequence

from .base import Source, SourceRecord


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def count_lines(paths: Iterable[Path]) -> int:
    """Non-empty lines over all files (for progress bars)."""
    total = 0
    for path in paths:
        with _open(path) as fh:
            total += sum(1 for line in fh if line.strip())
    return total


class Checkpoint:
    """Committed line counts per file, stored as JSON, written atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        if path is not None and path.exists():
            self.lines = json.loads(path.read_text())

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(self.lines, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class FileSource(Source):
    def __init__(
        self,
        paths: Sequence[str | Path],
        checkpoint: Path | None = None,
        follow: bool = False,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.paths = [Path(p).resolve() for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"no such post file: {path}")
        if follow and (len(self.paths) != 1 or self.paths[0].suffix == ".gz"):
            raise ValueError("follow mode tails exactly one plain JSONL file")
        self.follow = follow
        self._interval = poll_interval_s
        self._checkpoint = Checkpoint(checkpoint)
        self._index = 0
        self._fh: IO[bytes] | None = None
        self._line = 0  # lines read from the current file (blank ones included)
        self._pending = b""
        self._done = False

    def _advance_file(self) -> bool:
        """Open the next file, skipping lines already committed. False at the end."""
        while self._index < len(self.paths):
            path = self.paths[self._index]
            if self._fh is None:
                self._fh = _open(path)
                self._line = 0
                skip = self._checkpoint.lines.get(str(path), 0)
                for _ in range(skip):
                    if not self._fh.readline():
                        break
                    self._line += 1
                return True
            return True
        return False

    def poll(self, max_records: int) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        while len(out) < max_records and self._advance_file():
            path = self.paths[self._index]
            raw = self._fh.readline()  # type: ignore[union-attr]
            if raw and not raw.endswith(b"\n") and self.follow:
                self._pending += raw  # a writer is mid-line; wait for the rest
                raw = b""
            if not raw:
                if self.follow:
                    if not out:
                        time.sleep(self._interval)
                    break
                self._fh.close()  # type: ignore[union-attr]
                self._fh = None
                self._index += 1
                continue
            raw, self._pending = self._pending + raw, b""
            self._line += 1
            line = raw.rstrip(b"\r\n")
            if line.strip():
                out.append(SourceRecord(line, (str(path), self._line), f"{path.name}:{self._line}"))
        if not out and self._index >= len(self.paths):
            self._done = True
        return out

    def commit(self, records: Sequence[SourceRecord]) -> None:
        for rec in records:
            path, line = rec.position
            if line > self._checkpoint.lines.get(path, 0):
                self._checkpoint.lines[path] = line
        self._checkpoint.save()

    @property
    def exhausted(self) -> bool:
        return self._done

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
