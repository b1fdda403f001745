"""link_prediction (daily): complete the graph with facts the posts imply.

Snapshots the extracted facts, warm-starts the current completion model (or
trains one), writes the top predictions as ``inferred: true`` edges and
replaces the previous run's. The logic lives in
``pipeline.jobs.completion.run_completion``; settings in the config's
``completion`` section, per-run overrides in the params.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["mkg", "completion"],
    params={
        "threshold": Param(None, type=["null", "number"], minimum=0, maximum=1,
                           description="override completion.threshold for this run"),
        "top_k": Param(None, type=["null", "integer"], minimum=1, description="override completion.top_k"),
        "full_retrain": Param(False, type="boolean", description="train from scratch instead of warm-starting"),
    },
    doc_md=__doc__,
)
def link_prediction():
    @task
    def complete(params=None) -> dict:
        from pipeline.jobs.completion import run_completion
        from pipeline.airflow_env import load_config

        report = run_completion(load_config(), threshold=params.get("threshold"), top_k=params.get("top_k"),
                                full_retrain=bool(params.get("full_retrain")))
        return report.as_dict()

    complete()


link_prediction()
