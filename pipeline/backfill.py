"""Reprocess archived posts with the current model: chunks, date ranges, resumable.

Archives are JSONL files (optionally gzipped). A backfill is split into
chunks of files that can run in parallel (the Airflow DAG maps one task per
chunk); each chunk keeps a per-file checkpoint keyed by its files and a run
key, so a failed chunk resumes where it stopped and a finished one is not
read again. Graph writes are idempotent MERGEs, so overlapping or repeated
runs never duplicate a fact; re-extraction after a promotion uses the new
model version as run key, which makes the files count as unread.
"""
from __future__ import annotations

import glob
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Callable, Sequence

from .config import Config
from .post import Post


def expand_archives(patterns: Sequence[str | Path]) -> list[Path]:
    """Files matching the paths/globs, sorted and de-duplicated; an unmatched pattern is an error."""
    out: dict[str, Path] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern), recursive=True)) or ([str(pattern)] if Path(pattern).is_file() else [])
        if not matches:
            raise FileNotFoundError(f"no archive matches {pattern!r}")
        for m in matches:
            if Path(m).is_file():
                out.setdefault(str(Path(m).resolve()), Path(m).resolve())
    return sorted(out.values())


def chunk_files(files: Sequence[Path], files_per_chunk: int) -> list[list[str]]:
    if files_per_chunk < 1:
        raise ValueError("files_per_chunk must be at least 1")
    return [[str(f) for f in files[i:i + files_per_chunk]] for i in range(0, len(files), files_per_chunk)]


def _as_datetime(value: str | date | datetime | None, end: bool = False) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
    if not isinstance(value, datetime):  # a whole day: [start of start day, end of end day]
        value = datetime.combine(value, time.max if end else time.min)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def date_filter(start: str | date | datetime | None, end: str | date | datetime | None) -> Callable[[Post], bool] | None:
    """Accept posts created in [start, end] (dates are whole days, UTC); None when unbounded."""
    lo, hi = _as_datetime(start), _as_datetime(end, end=True)
    if lo is None and hi is None:
        return None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"backfill start {lo.isoformat()} is after end {hi.isoformat()}")
    return lambda post: (lo is None or post.created_at >= lo) and (hi is None or post.created_at <= hi)


def run_backfill(cfg: Config, paths: Sequence[str | Path], run_key: str = "", start=None, end=None,
                 progress: bool = True, reextract: bool = False) -> dict:
    """Process ``paths`` once (resuming a previous run with the same key); returns worker metrics.

    ``reextract`` without a ``run_key`` keys the run by the current model version.
    """
    from tqdm import tqdm

    from .runtime import make_extractor, running_worker
    from .sources.files import count_lines

    files = [Path(p) for p in paths]
    extractor = make_extractor(cfg)  # loaded once: its version may name the run
    if reextract and not run_key:
        run_key = extractor.model_version
    with running_worker(cfg, files, run_key=run_key, accept=date_filter(start, end), extractor=extractor) as (_, worker):
        worker.install_signal_handlers()
        with tqdm(total=count_lines(files), desc="backfill", unit="post", disable=not progress) as bar:
            metrics = worker.run(progress=bar)
        return {**metrics.as_dict(), "files": [str(f) for f in files], "run_key": run_key,
                "model_version": worker.extractor.model_version}
