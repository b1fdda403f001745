"""detect_novelty (hourly): which entity types and relations does the model not know yet?

Supervised: labelled posts (topic ``posts.labeled`` or a JSONL log) are
ingested; classes unknown to the current model with enough examples become a
continual task. Unsupervised: uncertain predictions of the last window are
clustered into ``:CandidateRelation``/``:CandidateType`` nodes for a person to
name (``mkg candidates confirm``). A proposed task updates the
``mkg://continual/tasks`` asset, which schedules ``continual_update``.
The logic lives in ``continual.novelty`` and ``continual.candidates``; the
configuration is read and the resources opened in ``pipeline.jobs.novelty``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from continual.task_queue import TASKS_ASSET_URI

CONTINUAL_TASKS = Asset(TASKS_ASSET_URI)


@dag(
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["mkg", "continual"],
    params={
        "min_examples": Param(None, type=["null", "integer"], minimum=1,
                              description="override continual.min_examples for this run"),
        "window_hours": Param(24, type="integer", minimum=1,
                              description="how far back uncertain predictions are clustered"),
        "unsupervised": Param(True, type="boolean", description="also cluster uncertain predictions"),
    },
    doc_md=__doc__,
)
def detect_novelty():
    @task
    def supervised(params=None) -> dict:
        from pipeline.airflow_env import load_config
        from pipeline.jobs.novelty import detect_novelty as detect
        from pipeline.runtime import open_graph

        cfg = load_config()
        if params.get("min_examples"):
            cfg.continual.min_examples = params["min_examples"]
        with open_graph(cfg) as graph:
            graph.ensure_schema()
            return detect(cfg, graph).as_dict()

    @task
    def unsupervised(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.airflow_env import load_config
        from pipeline.jobs.novelty import discover_from_config

        if not params.get("unsupervised", True):
            raise AirflowSkipException("unsupervised discovery switched off for this run")
        return discover_from_config(load_config(), window_hours=params["window_hours"])

    @task(outlets=[CONTINUAL_TASKS])
    def announce(decision: dict) -> list[dict]:
        """Succeeds (and updates the asset) only when a task was proposed."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision["tasks"]:
            raise AirflowSkipException("no new task: " + (
                f"emerging below the threshold: {decision['emerging']}" if decision["emerging"] else "nothing new"))
        return decision["tasks"]

    announce(supervised())
    unsupervised()


detect_novelty()
