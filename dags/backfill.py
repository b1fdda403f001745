"""backfill (manual): reprocess archived posts with the current model, in parallel chunks.

Trigger with ``paths`` (files or globs of JSONL/.jsonl.gz archives) and
optionally a date range (``start``/``end``, UTC; posts outside are skipped).
Files are split into chunks, one mapped task each; every chunk checkpoints
per file, so a failed chunk resumes where it stopped when retried or the DAG
is run again with the same ``run_key``. Writes are idempotent MERGEs.
With the embedded graph run one chunk at a time (it has a single writer);
with Neo4j, chunks run in parallel.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mkg", "backfill"],
    params={
        "paths": Param([], type="array", items={"type": "string"}, description="archive files or globs"),
        "start": Param(None, type=["null", "string"], description="first day or ISO time (UTC)"),
        "end": Param(None, type=["null", "string"], description="last day (inclusive) or ISO time (UTC)"),
        "files_per_chunk": Param(4, type="integer", minimum=1),
        "run_key": Param("", type="string", description="same key resumes; a new key reads files again"),
    },
    doc_md=__doc__,
)
def backfill():
    @task
    def plan(params=None) -> list[list[str]]:
        from pipeline.backfill import chunk_files, expand_archives, date_filter

        if not params["paths"]:
            raise ValueError("backfill needs 'paths' (files or globs of archived posts)")
        date_filter(params.get("start"), params.get("end"))  # a bad range fails here, before any work
        return chunk_files(expand_archives(params["paths"]), params["files_per_chunk"])

    @task(retries=2, retry_delay=timedelta(seconds=30), max_active_tis_per_dagrun=4)
    def process(chunk: list[str], params=None) -> dict:
        from pipeline.airflow_env import load_config
        from pipeline.backfill import run_backfill

        return run_backfill(load_config(), chunk, run_key=params.get("run_key", ""), start=params.get("start"),
                            end=params.get("end"), progress=False)

    @task
    def summarise(results: list[dict]) -> dict:
        keys = ("records_received", "posts_written", "facts_written", "skipped", "dead_lettered")
        return {k: sum(r[k] for r in results) for k in keys} | {"chunks": len(results)}

    summarise(process.expand(chunk=plan()))


backfill()
