"""resolve_entities (hourly): link the entity nodes that name one real-world entity.

Compares the entities written since the last run with those that share a
word, acronym or surface form with them, and links the merges as SAME_AS with
a canonical key per cluster; nodes and facts are never moved, so workers keep
writing meanwhile. The logic lives in ``pipeline.jobs.resolution.resolve``;
settings in the config's ``resolution`` section. Undo one merge with
``mkg unmerge KEY``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["mkg", "resolution"],
    params={"full": Param(False, type="boolean", description="compare every entity, not only the new ones")},
    doc_md=__doc__,
)
def resolve_entities():
    @task
    def resolve(params=None) -> dict:
        from pipeline.airflow_env import load_config
        from pipeline.jobs.resolution import resolve as run

        return run(load_config(), full=bool(params.get("full"))).as_dict()

    resolve()


resolve_entities()
