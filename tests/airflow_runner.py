"""Run inside a subprocess with AIRFLOW_HOME set: load the DagBag, optionally dag.test() one DAG.

Prints one line ``MKG_RESULT {json}`` with the import errors, DAG ids and,
for a run, the DagRun state, each task instance's state and its return value.
A subprocess keeps Airflow's settings and logging out of the pytest process.
"""
from __future__ import annotations

import json
import sys


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    result: dict = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dag_ids)}
    if len(sys.argv) > 1:
        dag = bag.get_dag(sys.argv[1])
        conf = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
        run = dag.test(run_conf=conf)
        result["state"] = str(run.state)
        result["tasks"], result["xcom"] = {}, {}
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            for ti in run.get_task_instances():
                name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                result["tasks"][name] = str(ti.state)
                query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=ti.task_id,
                                           map_indexes=ti.map_index, key="return_value")
                rows = session.scalars(query).all()
                if rows:
                    result["xcom"][name] = XComModel.deserialize_value(rows[0])
    print("MKG_RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
