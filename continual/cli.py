"""``mkg benchmark imre|imner``: the class-incremental benchmarks from the command line.

Wire into the main parser with ``add_benchmark_parser(subparsers)``; the
sub-command sets ``func`` (``cmd_benchmark``) like every other ``mkg``
command. ``benchmarks/continual.py`` reuses :func:`add_benchmark_options`
and :func:`config_from_args` to run the same thing as a recorded benchmark.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from extractors.kinds import MNER, MRE, get_kind

from .catalog import ADDABLE, COMPONENTS, METHODS, PAPER_DEFAULTS
from .catalog import DEFAULT_METHODS as _DEFAULTS
from .streams import DEFAULT_DATA, IMNER_ORDERS, IMRE_SPLITS

DEFAULT_METHODS = ",".join(_DEFAULTS)

METHODS_HELP = (f"comma-separated methods (default {DEFAULT_METHODS}): {', '.join(METHODS)}; MSPT ablations: "
                f"mspt-no-<{'|'.join(COMPONENTS)}> (suffixes combine, e.g. mspt-no-memory-no-modulation); "
                f"a baseline with MSPT's own components (MNER relabelling, MRE logit adjustment): "
                f"<baseline>+<{'|'.join(ADDABLE)}>, e.g. replay+relabel, replay_ewc+balance")


# the option that picks a benchmark's variant, per kind: flag, choices, default, help
VARIANT_OPTION = {
    MRE.name: ("--split", IMRE_SPLITS, "sep10",
               "IMRE split: sep10 (10 tasks, 2 new relations each) or sep5 (5 tasks, 4 each)"),
    MNER.name: ("--order", sorted(IMNER_ORDERS), "PLOM",
                "IMNER task order: PLOM (PER, LOC, ORG, MISC) or POLM (PER, ORG, LOC, MISC)"),
}


def add_benchmark_options(p: argparse.ArgumentParser, kind: str) -> None:
    """Options shared by ``mkg benchmark imre|imner`` and ``python -m benchmarks.continual``."""
    flag, choices, default, text = VARIANT_OPTION[kind]
    p.add_argument(flag, choices=choices, default=default, help=text)
    lr, alpha, lam = (PAPER_DEFAULTS[kind][k] for k in ("lr", "alpha", "lam"))
    p.add_argument("--methods", default=DEFAULT_METHODS, help=METHODS_HELP)
    p.add_argument("--tasks", type=int, metavar="N", help="run only the first N tasks")
    p.add_argument("--limit", type=int, metavar="N",
                   help="at most N training examples per task (classes take turns, seeded); validation N/4")
    p.add_argument("--test-limit", type=int, metavar="N", help="at most N examples of each cumulative test set")
    p.add_argument("--epochs", type=int, default=3, help="epochs per task (default 3); with more than one, the "
                                                         "epoch best on the task's validation set is kept")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, help=f"encoder learning rate (default: the paper's {lr})")
    p.add_argument("--head-lr", type=float, default=1e-3, help="classifier/CRF/key-bank learning rate")
    p.add_argument("--alpha", type=float, help=f"MSPT gradient-modulation strength (default {alpha})")
    p.add_argument("--lambda", dest="lam", type=float, help=f"MSPT attention-distillation weight (default {lam})")
    p.add_argument("--memory-per-class", type=int, default=6, help="rehearsal exemplars per class (default 6)")
    p.add_argument("--ewc-lambda", type=float, default=1000.0, help="EWC penalty weight (default 1000)")
    p.add_argument("--baseline-interaction", action="store_true",
                   help="give the baselines the shared-key interaction too (default: plain dual stream)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (default ../shared/data)")
    p.add_argument("--text", default="minilm", help="text encoder: 'minilm' or a local HF model folder")
    p.add_argument("--vision", default="dinov2-small", choices=["dinov2-small", "random-vit-small"],
                   help="vision encoder (random-vit-small: tests only)")
    p.add_argument("--out", help="output folder (default var/continual/<benchmark>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--log-format", choices=["json", "text"], default="json",
                   help="format of the log lines on stderr, one per epoch and per finished task (default json)")


def config_from_args(args, kind: str):
    from .benchmark import BenchmarkConfig

    variant = getattr(args, VARIANT_OPTION[kind][0].lstrip("-"))
    name = f"{get_kind(kind).benchmark}-{variant}"
    return BenchmarkConfig(
        kind=kind, variant=variant, methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        n_tasks=args.tasks, limit=args.limit, test_limit=args.test_limit, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr, alpha=args.alpha, lam=args.lam,
        per_class=args.memory_per_class, ewc_lambda=args.ewc_lambda, baseline_interaction=args.baseline_interaction,
        seed=args.seed, device=args.device, data=Path(args.data), text=args.text, vision=args.vision,
        out_dir=Path(args.out or Path("var/continual") / name), progress=not args.no_progress)


def setup_benchmark_logging(args) -> None:
    from pipeline.logs import setup_logging

    setup_logging("INFO", args.log_format)


def add_benchmark_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``benchmark`` (with ``imre`` and ``imner``) to ``mkg``'s sub-commands."""
    p = subparsers.add_parser(
        "benchmark", help="class-incremental benchmarks (IMRE, IMNER): MSPT against continual-learning baselines",
        description="Run continual-learning methods on the class-incremental benchmarks of the MSPT paper: each "
                    "task adds new relations (IMRE) or entity types (IMNER); after each task k the model is scored "
                    "on the cumulative test set (A_k) and on task k's new classes (U_k). Writes results.csv, "
                    "results.json, results.md, accuracy.png and modulation.png (gamma per step) to --out.")
    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    imre = sub.add_parser("imre", help="IMRE: relations arrive task by task (MNRE, splits sep10/sep5)",
                          description="Class-incremental multimodal relation extraction. Metric: micro-F1 without "
                                      "None. Example: mkg benchmark imre --split sep10 --methods mspt,replay "
                                      "--tasks 2 --limit 150 --epochs 1")
    add_benchmark_options(imre, MRE.name)
    imre.set_defaults(func=cmd_benchmark, benchmark_kind=MRE.name)
    imner = sub.add_parser("imner", help="IMNER: entity types arrive task by task (Twitter-2017, PLOM/POLM)",
                           description="Class-incremental multimodal NER. Metric: entity-level F1. Example: "
                                       "mkg benchmark imner --order PLOM --methods mspt,finetune --limit 200")
    add_benchmark_options(imner, MNER.name)
    imner.set_defaults(func=cmd_benchmark, benchmark_kind=MNER.name)
    compare = sub.add_parser(
        "compare", help="join results of separate runs (methods, seeds) of one setting into one table and plot",
        description="Put the results of runs made separately (one method or seed per process) side by side: "
                    "prints the A_k table (mean and std over seeds where a method has several) and writes the "
                    "plot. Refuses results whose settings differ in anything but the methods and the seed. "
                    "Example: mkg benchmark compare var/continual/a/results.json var/continual/b/results.json "
                    "--plot var/continual/a-b.png")
    compare.add_argument("results", nargs="+", metavar="RESULTS[:METHOD,...]",
                         help="results.json of --out folders, or benchmarks/results/continual_*.json records; "
                              "':replay,ewc' after a file takes only those methods of it")
    compare.add_argument("--plot", type=Path, help="write the A_k plot (PNG) here")
    compare.set_defaults(func=cmd_benchmark_compare)
    return p


def cmd_benchmark_compare(args) -> int:
    from .combine import combine, markdown, plot

    paths, only = [], []
    for arg in args.results:
        path, _, methods = arg.partition(":")
        paths.append(Path(path))
        only.append([m.strip() for m in methods.split(",") if m.strip()] if methods else None)
    try:
        combined = combine([json.loads(p.read_text()) for p in paths], names=[str(p) for p in paths], only=only)
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        print(f"mkg benchmark compare: {exc}", file=sys.stderr)
        return 2
    print(markdown(combined))
    if args.plot:
        print(f"accuracy_plot: {plot(combined, args.plot)}")
    return 0


def cmd_benchmark(args) -> int:
    from .benchmark import run_benchmark

    setup_benchmark_logging(args)
    cfg = config_from_args(args, args.benchmark_kind)
    try:
        result = run_benchmark(cfg)
    except (ValueError, FileNotFoundError) as exc:  # a bad method name, missing data
        print(f"mkg benchmark: {exc}", file=sys.stderr)
        return 2
    print((Path(result["files"]["markdown"])).read_text())
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0


def add_continual_parser(sub) -> None:
    """``mkg continual detect|update|tasks``: what the Airflow DAGs run, without Airflow."""
    p = sub.add_parser("continual", help="detect new classes and run gated continual updates (the DAGs' steps)",
                       description="The steps of the detect_novelty and continual_update DAGs, for machines "
                                   "without Airflow: 'detect' ingests labelled posts and proposes a task for "
                                   "classes the current model does not know (continual.min_examples each); "
                                   "'update' trains the oldest open task (or --task) with continual.method "
                                   "(MSPT by default) and promotes the new model only if the gate passes; "
                                   "'tasks' lists tasks and their state.",
                       epilog="Example: mkg continual detect --config cfg.yaml && mkg continual update --config cfg.yaml")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("detect", help="ingest labelled posts, propose tasks, record the schema in the graph")
    c.add_argument("--config", help="YAML config file (default: embedded defaults)")
    c = csub.add_parser("update", help="train one task and promote it through the gate")
    c.add_argument("--task", help="task id (default: the oldest proposed, interrupted or failed task)")
    c.add_argument("--config", help="YAML config file (default: embedded defaults)")
    c = csub.add_parser("tasks", help="list continual tasks with status and scores")
    c.add_argument("--config", help="YAML config file (default: embedded defaults)")
    for c in csub.choices.values():
        c.set_defaults(func=cmd_continual)


def cmd_continual(args) -> int:
    import json
    from dataclasses import asdict

    from pipeline.config import load_config
    from pipeline.logs import setup_logging
    from pipeline.runtime import open_graph

    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.format)
    if args.action == "tasks":
        from .task_queue import TaskQueue

        print(json.dumps([asdict(t) for t in TaskQueue(cfg.continual.tasks_dir).all()], indent=2))
        return 0
    with open_graph(cfg) as graph:
        graph.ensure_schema()
        if args.action == "detect":
            from pipeline.jobs.novelty import detect_novelty

            print(json.dumps(detect_novelty(cfg, graph).as_dict(), indent=2))
            return 0
        from .update import run_update

        report = run_update(cfg, args.task, graph)
    print(json.dumps(report, indent=2, default=str))
    return 0 if report.get("status") in ("promoted", "idle") else 3
