"""Benchmark outputs: CSV, JSON, a Markdown table and plots.

- ``results.json``: everything (config, stream, per-task scores, per-step logs);
- ``results.csv``: one row per method and task (A_k, U_k, L_AD, gamma, ...);
- ``results.md``: A_k and U_k tables, methods as rows, tasks as columns, and
  P/R/F1 with support per relation / entity type after the last task;
- ``accuracy.png``: A_k per task for every method;
- ``modulation.png``: gamma = s^t/s^v per training step, per method, with the
  task boundaries (a plot like MSPT's Figure 4).

Matplotlib runs on the Agg backend: no display needed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

CSV_FIELDS = ["method", "task", "new_classes", "A", "U", "n_labels", "train_examples", "test_examples", "memory_exemplars",
              "l_ad", "ewc_penalty", "gamma_mean", "coeff_text_mean", "applied_text_mean", "task_loss", "best_epoch",
              "seconds"]


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(result: dict) -> str:
    methods = result["methods"]
    n = len(result["stream"])
    cfg = result["config"]
    lines = [f"# {result['benchmark']}: class-incremental results", "",
             f"Metric: {result['metric']}. Tasks: {n}; epochs per task: {cfg.get('epochs')}; "
             f"training examples per task: {cfg.get('limit') or 'all'}; test examples per task: "
             f"{cfg.get('test_limit') or 'all'}; encoder lr {cfg.get('lr')}, alpha {cfg.get('alpha')}, "
             f"lambda {cfg.get('lam')}, seed {cfg.get('seed')}.", ""]
    for key, title in (("A", "A_k: F1 on all classes seen up to task k (cumulative test set)"),
                       ("U", "U_k: F1 on task k's new classes")):
        lines += [f"## {title}", "", "| method | " + " | ".join(f"{key}_{k + 1}" for k in range(n)) +
                  (" | mean A |" if key == "A" else " |"),
                  "|---|" + "---:|" * (n + (1 if key == "A" else 0))]
        for m, r in methods.items():
            cells = [_fmt(t[key]) for t in r["tasks"]] + ["-"] * (n - len(r["tasks"]))
            extra = f" {_fmt(r['mean_A'])} |" if key == "A" else ""
            lines.append(f"| {m} | " + " | ".join(cells) + " |" + extra)
        lines.append("")
    lines += ["Tasks: " + "; ".join(f"{t['task'] + 1}: {', '.join(t['new_classes'])}" for t in result["stream"]), ""]
    lines += per_class_markdown(result)
    return "\n".join(lines)


def per_class_markdown(result: dict) -> list[str]:
    """P/R/F1 and support of every class after each method's last task (as ``mkg evaluate`` gives them)."""
    lines = []
    for m, r in result["methods"].items():
        last = r["tasks"][-1] if r["tasks"] else {}
        if not last.get("per_class"):
            continue
        lines += [f"## {m}: per class after task {last['task'] + 1}", "",
                  "| class | P | R | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {c} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['support']} |"
                  for c, s in last["per_class"].items()]
        lines.append("")
    return lines


def write_csv(result: dict, path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for m, r in result["methods"].items():
            for t in r["tasks"]:
                w.writerow({**t, "method": m, "new_classes": " ".join(t["new_classes"])})
    return path


def plot_accuracy(result: dict, path: str | Path) -> Path:
    """A_k per task for every method; where a method has several seeds (a
    :func:`continual.combine.combine` result) a band of +- one std around the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m, r in result["methods"].items():
        xs = [t["task"] + 1 for t in r["tasks"]]
        ys = [t["A"] for t in r["tasks"]]
        n_seeds = len(r.get("seeds", [None]))
        line, = ax.plot(xs, ys, marker="o", label=m if n_seeds == 1 else f"{m} ({n_seeds} seeds)")
        if n_seeds > 1:
            ax.fill_between(xs, [y - t["A_std"] for y, t in zip(ys, r["tasks"])],
                            [y + t["A_std"] for y, t in zip(ys, r["tasks"])], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("task")
    ax.set_ylabel("A_k (F1, %)")
    ax.set_title(f"{result['benchmark']}: F1 on all seen classes after each task")
    ax.set_xticks(range(1, len(result["stream"]) + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _task_positions(records: list[dict]) -> list[float]:
    """x of each step: 1 + task + (step / steps of that task), so methods line up per task."""
    steps: dict[int, int] = {}
    for rec in records:
        steps[rec["task"]] = max(steps.get(rec["task"], 0), rec["step"] + 1)
    return [1 + rec["task"] + rec["step"] / steps[rec["task"]] for rec in records]


def plot_modulation(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m, r in result["methods"].items():
        records = r.get("modulation") or []
        if records:
            ax.plot(_task_positions(records), [rec["gamma"] for rec in records], label=m, lw=1)
    for k in range(2, len(result["stream"]) + 1):
        ax.axvline(k, color="grey", ls=":", lw=0.8)
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("task (its training steps spread evenly; methods differ in steps per task)")
    ax.set_ylabel("gamma = s_text / s_vision")
    ax.set_title(f"{result['benchmark']}: modality imbalance per step")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write all report files into ``out_dir``; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md",
             "accuracy_plot": out / "accuracy.png", "modulation_plot": out / "modulation.png"}
    paths["json"].write_text(json.dumps(result, indent=1, default=str))
    write_csv(result, paths["csv"])
    paths["markdown"].write_text(markdown(result))
    plot_accuracy(result, paths["accuracy_plot"])
    plot_modulation(result, paths["modulation_plot"])
    return paths
