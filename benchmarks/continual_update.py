"""The production continual-update path on real IMRE sep10 tasks (what the DAGs run).

For each task k: its labelled training posts arrive (IMRE ``ours_train_k``,
``--per-task`` posts, relations taking turns) -> ``detect_novelty`` proposes
the new relations -> ``run_update`` trains with the configured method and
decides through the gate. Records, per task: the proposal, old-class F1
before/after, new-class F1, A_k on the validation examples, the gate
decision, wall time. Everything in a temp folder; the summary goes to
``benchmarks/results/continual_update_imre_sep10.json``.

    python -m benchmarks.continual_update --tasks 4 --per-task 200 --epochs 3 --lr 1e-4 --per-class 80
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from continual.labelled import post_from_re_example
from pipeline.jobs.novelty import detect_novelty
from continual.streams import balanced_sample
from continual.update import run_update
from extractors.datasets import read_re
from extractors.kinds import MRE
from pipeline.config import load_config

from .common import SHARED_DATA, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--per-task", type=int, default=200, help="labelled posts per task")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--method", default="mspt")
    parser.add_argument("--min-examples", type=int, default=10)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mkg-cu-"))
    labelled = root / "labelled.jsonl"
    cfg = load_config(None, environ={})
    c = cfg.continual
    c.kinds, c.labelled_path, c.labelled_dir, c.tasks_dir, c.work_dir = [MRE.name], labelled, root / "lab", root / "tasks", root / "work"
    c.epochs, c.lr, c.per_class, c.method, c.min_examples, c.device = args.epochs, args.lr, args.per_class, args.method, args.min_examples, "auto"
    cfg.extractor.models_dir, cfg.worker.state_dir, cfg.worker.dead_letter_path = root / "models", root / "state", root / "dead.jsonl"
    cfg.extractor.kind = "multimodal"  # learn from no model: the shipped versions already know every sep10 relation
    rows, started = [], time.perf_counter()
    for k in range(args.tasks):
        examples = read_re(SHARED_DATA / "imre" / "sep10" / f"ours_train_{k}.txt")
        chosen = balanced_sample(examples, args.per_task, lambda ex: ex.relation, seed=k)
        with labelled.open("a") as fh:
            for i, ex in enumerate(chosen):
                fh.write(json.dumps(post_from_re_example(ex, f"t{k}-{i}", f"2026-03-{k + 1:02d}T00:{i // 60 % 60:02d}:{i % 60:02d}Z")) + "\n")
        t0 = time.perf_counter()
        decision = detect_novelty(cfg)
        report = run_update(cfg) if decision.tasks else {"status": "no task"}
        rows.append({"task": k, "proposed": decision.tasks, "emerging": decision.emerging,
                     "status": report.get("status"), "old_before": report.get("old_before"),
                     "old_after": report.get("old_after"), "new_f1": report.get("U"), "A": report.get("A"),
                     "gate_reasons": report.get("gate", {}).get("reasons"), "seconds": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
    write_result("continual_update_imre_sep10", {"tasks": rows, "seconds": time.perf_counter() - started,
                                                  "config": vars(args)},
                 module="benchmarks.continual_update",
                 notes="production path (detect_novelty + run_update + gate) on IMRE sep10 train slices; "
                       "F1 on the labelled validation split (post-hash 20%), text only")


if __name__ == "__main__":
    main()
