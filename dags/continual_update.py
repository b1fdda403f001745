"""continual_update: learn a proposed task with MSPT, promote only through the gate.

Scheduled by the ``mkg://continual/tasks`` asset (a task proposed by
``detect_novelty``) or triggered by hand with parameters. The update trains
from the labelled examples plus the rehearsal memory, scores old and new
classes on validation data, and promotes the new version only if the gate
passes; workers pick it up between batches, without a restart. After a
promotion, configured archives (``continual.reextract_paths``) are reprocessed
with the new model, so old posts gain the new relations (edges are merged,
never duplicated). A failed run leaves the current model; running the DAG
again resumes the task from its last epoch checkpoint.
"""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, Param, dag, task

from continual.task_queue import TASKS_ASSET_URI

CONTINUAL_TASKS = Asset(TASKS_ASSET_URI)


@dag(
    schedule=[CONTINUAL_TASKS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one update at a time: each extends the version the previous one promoted
    tags=["mkg", "continual"],
    params={
        "task_id": Param(None, type=["null", "string"], description="task to run (default: the oldest open one)"),
        "method": Param(None, type=["null", "string"], description="override continual.method (e.g. replay)"),
        "epochs": Param(None, type=["null", "integer"], minimum=1),
        "lr": Param(None, type=["null", "number"], exclusiveMinimum=0),
        "per_class": Param(None, type=["null", "integer"], minimum=1),
        "gate_max_old_drop": Param(None, type=["null", "number"], minimum=0),
        "gate_min_new_f1": Param(None, type=["null", "number"], minimum=0, maximum=100),
        "reextract": Param(True, type="boolean", description="reprocess continual.reextract_paths after a promotion"),
        "fail_after_epoch": Param(None, type=["null", "integer"], minimum=1,
                                  description="testing only: crash after this epoch's checkpoint"),
    },
    doc_md=__doc__,
)
def continual_update():
    @task
    def update(params=None) -> dict:
        from continual.update import run_update
        from pipeline.airflow_env import load_config
        from pipeline.runtime import open_graph

        cfg = load_config()
        for key in ("method", "epochs", "lr", "per_class", "gate_max_old_drop", "gate_min_new_f1"):
            if params.get(key) is not None:
                setattr(cfg.continual, key, params[key])
        with open_graph(cfg) as graph:
            return run_update(cfg, params.get("task_id"), graph, fail_after_epoch=params.get("fail_after_epoch"))

    @task
    def reextract(report: dict, params=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.airflow_env import load_config
        from pipeline.backfill import expand_archives, run_backfill

        cfg = load_config()
        if report.get("status") != "promoted":
            raise AirflowSkipException(f"nothing promoted ({report.get('status')}: {report.get('reason') or report.get('gate', {}).get('reasons')})")
        if not params.get("reextract", True) or not cfg.continual.reextract_paths:
            raise AirflowSkipException("re-extraction not configured (continual.reextract_paths)")
        return run_backfill(cfg, expand_archives(cfg.continual.reextract_paths), run_key=report["version"],
                            progress=False)

    reextract(update())


continual_update()
