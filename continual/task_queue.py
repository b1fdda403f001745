"""Continual-learning tasks as small JSON records: what detect_novelty decided,
what continual_update did with it.

One file per task under ``ROOT/<task id>.json``, replaced atomically, so the
DAG that proposes and the DAG that trains (different processes, maybe
different machines on a shared volume) never read half a record. A task moves
``proposed -> training -> promoted | refused | failed``; a failed task may be
run again (it resumes from its checkpoint).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mkg_common.clock import utc_iso

# The Airflow asset a proposed task updates (detect_novelty) and continual_update is scheduled on.
TASKS_ASSET_URI = "mkg://continual/tasks"

STATUSES = ("proposed", "training", "promoted", "refused", "failed")
OPEN = ("proposed", "training", "failed")  # still to be (re)run


@dataclass
class ContinualTask:
    id: str
    kind: str  # a name in extractors.kinds
    new_classes: list[str]
    counts: dict[str, int]  # labelled examples per new class when proposed
    created_at: str = field(default_factory=lambda: utc_iso(timespec="seconds"))
    status: str = "proposed"
    base_version: str | None = None  # the model version the task extends (None: first model)
    result: dict = field(default_factory=dict)  # scores, gate decision, new version, error
    history: list[dict] = field(default_factory=list)  # (time, status, note) entries


class TaskQueue:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, task_id: str) -> Path:
        if not task_id.replace("-", "").isalnum():
            raise ValueError(f"bad task id {task_id!r}")
        return self.root / f"{task_id}.json"

    def save(self, task: ContinualTask) -> ContinualTask:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(task.id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(task), indent=2))
        os.replace(tmp, path)
        return task

    def get(self, task_id: str) -> ContinualTask:
        path = self._path(task_id)
        if not path.exists():
            raise KeyError(f"no continual task {task_id!r} in {self.root}")
        return ContinualTask(**json.loads(path.read_text()))

    def all(self, kind: str | None = None) -> list[ContinualTask]:
        if not self.root.exists():
            return []
        tasks = [ContinualTask(**json.loads(p.read_text())) for p in sorted(self.root.glob("*.json"))]
        return [t for t in tasks if kind is None or t.kind == kind]

    def create(self, kind: str, new_classes: list[str], counts: dict[str, int],
               base_version: str | None) -> ContinualTask:
        n = len(self.all(kind))
        task = ContinualTask(f"{kind}-task-{n:04d}", kind, sorted(new_classes), counts, base_version=base_version)
        task.history.append({"at": task.created_at, "status": "proposed", "note": f"{len(new_classes)} new classes"})
        return self.save(task)

    def set_status(self, task: ContinualTask, status: str, note: str = "", **result) -> ContinualTask:
        if status not in STATUSES:
            raise ValueError(f"unknown task status {status!r}")
        task.status = status
        task.result.update(result)
        task.history.append({"at": utc_iso(timespec="seconds"), "status": status, "note": note})
        return self.save(task)

    def next_open(self, kind: str | None = None) -> ContinualTask | None:
        """The oldest task still to run (proposed, interrupted or failed)."""
        open_tasks = [t for t in self.all(kind) if t.status in OPEN]
        return min(open_tasks, key=lambda t: (t.created_at, t.id)) if open_tasks else None

    def classes_in_flight(self, kind: str) -> set[str]:
        """Classes already proposed or learned (not to be proposed again)."""
        return {c for t in self.all(kind) if t.status != "refused" for c in t.new_classes}

    def refused_counts(self, kind: str) -> dict[str, int]:
        """For refused classes, the example count they were refused at (re-proposed once it grows)."""
        out: dict[str, int] = {}
        for t in self.all(kind):
            if t.status == "refused":
                for c in t.new_classes:
                    out[c] = max(out.get(c, 0), t.counts.get(c, 0))
        return out
