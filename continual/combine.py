"""Put benchmark records of one setting, run separately, into one comparison.

A full-data run of every method does not fit one session on a small machine, so
methods (and seeds) are run in separate processes, each writing its own record
(``benchmarks/results/continual_*.json``). This module joins such records into
one result -- the paper's Table 1 / Figure 3 in our numbers -- and refuses
records whose settings differ in anything but the methods and the seed, so a
table never mixes runs that are not comparable. Over several seeds a method's
A_k is the mean, with the standard deviation beside it.
"""
from __future__ import annotations

import statistics

from .report import _fmt, plot_accuracy

# Settings that may differ between records of one comparison.
FREE_SETTINGS = ("methods", "out_dir", "progress", "device", "seed")


def _seed_order(seed) -> tuple:
    return (not isinstance(seed, int), seed if isinstance(seed, int) else str(seed))


def _setting(record: dict) -> dict:
    return {k: v for k, v in record["config"].items() if k not in FREE_SETTINGS}


def _summary(record: dict) -> dict:
    """The summary of a record: a ``benchmarks/results`` file, a summary, or a full ``results.json`` of ``--out``."""
    s = record.get("metrics", record)
    if any("tasks" in r for r in s["methods"].values()):  # full report: per-task dicts
        s = {**s, "methods": {m: {"A": [t["A"] for t in r["tasks"]], "U": [t["U"] for t in r["tasks"]]}
                              for m, r in s["methods"].items()}}
    return s


def _select(summary: dict, keep: list[str] | None, name: str) -> dict:
    if keep is None:
        return summary
    missing = [m for m in keep if m not in summary["methods"]]
    if missing:
        raise ValueError(f"{name} has no {', '.join(missing)} (it has {', '.join(summary['methods'])})")
    return {**summary, "methods": {m: summary["methods"][m] for m in keep}}


def combine(records: list[dict], names: list[str] | None = None,
            only: list[list[str] | None] | None = None) -> dict:
    """One result with every method of ``records`` (benchmark summaries or results files).

    ``names`` label the records in error messages (e.g. their file names).
    ``only`` (one entry per record, ``None`` for all) takes just some methods
    of a record, e.g. its baseline when its MSPT run was redone elsewhere.
    Raises ValueError if the records are of different benchmarks or settings,
    if a method appears twice with the same seed, or if ``only`` names a
    method its record does not have.
    """
    names = names or [f"record {i + 1}" for i in range(len(records))]
    only = only or [None] * len(records)
    for r, name in zip(records, names):
        if not {"benchmark", "config", "stream", "methods"} <= set(r.get("metrics", r)):
            raise ValueError(f"{name} is not a continual benchmark result")
    summaries = [_select(_summary(r), keep, name) for r, keep, name in zip(records, only, names)]
    if not summaries:
        raise ValueError("nothing to combine")
    first, first_name = summaries[0], names[0]
    runs: dict[str, dict[int, tuple[str, dict]]] = {}
    for s, name in zip(summaries, names):
        if s["benchmark"] != first["benchmark"]:
            raise ValueError(f"{name} is {s['benchmark']}, {first_name} is {first['benchmark']}")
        diff = sorted(k for k in set(_setting(s)) | set(_setting(first))
                      if _setting(s).get(k) != _setting(first).get(k))
        if diff:
            raise ValueError(f"{name} and {first_name} differ in " + ", ".join(
                f"{k} ({_setting(s).get(k)!r} vs {_setting(first).get(k)!r})" for k in diff))
        seed = s["config"].get("seed")
        for method, r in s["methods"].items():
            if seed in runs.setdefault(method, {}):
                raise ValueError(f"{method} with seed {seed} is in both {runs[method][seed][0]} and {name}; "
                                 "pass only one of them")
            runs[method][seed] = (name, r)
    methods = {}
    for method, by_seed in runs.items():
        seeds = sorted(by_seed, key=_seed_order)
        per_seed = [by_seed[s][1] for s in seeds]
        n_tasks = min(len(r["A"]) for r in per_seed)
        tasks = []
        for k in range(n_tasks):
            a = [r["A"][k] for r in per_seed]
            u = [r["U"][k] for r in per_seed]
            tasks.append({"task": k, "new_classes": first["stream"][k]["new_classes"], "A": statistics.fmean(a),
                          "A_std": statistics.stdev(a) if len(a) > 1 else 0.0, "U": statistics.fmean(u)})
        methods[method] = {"tasks": tasks, "seeds": seeds,
                           "final_A": tasks[-1]["A"], "final_A_std": tasks[-1]["A_std"],
                           "final_A_per_seed": [r["A"][n_tasks - 1] for r in per_seed],
                           "mean_A": statistics.fmean(statistics.fmean(r["A"][:n_tasks]) for r in per_seed),
                           "records": [by_seed[s][0] for s in seeds]}
    return {"benchmark": first["benchmark"], "metric": first["metric"], "stream": first["stream"],
            "config": {**_setting(first), "seed": sorted({s["config"].get("seed") for s in summaries}, key=_seed_order)},
            "methods": methods}


def markdown(combined: dict) -> str:
    """A_k per method: the mean over seeds, and the final A_k's std where a method has several."""
    n = len(combined["stream"])
    cfg = combined["config"]
    lines = [f"A_k ({combined['metric']}, cumulative test set after task k) of {combined['benchmark']}; "
             f"training examples per task: {cfg.get('limit') or 'all'}, test examples: "
             f"{cfg.get('test_limit') or 'all'}, epochs {cfg.get('epochs')}, lr {cfg.get('lr')}, "
             f"seeds {', '.join(map(str, cfg['seed']))}.", "",
             "| method | seeds | " + " | ".join(f"A_{k + 1}" for k in range(n)) + " | mean A |",
             "|---|---|" + "---:|" * (n + 1)]
    for m, r in combined["methods"].items():
        several = len(r["seeds"]) > 1
        cells = [_fmt(t["A"]) + (f" ± {t['A_std']:.1f}" if several and t["task"] == n - 1 else "")
                 for t in r["tasks"]] + ["-"] * (n - len(r["tasks"]))
        lines.append(f"| {m} | {', '.join(map(str, r['seeds']))} | " + " | ".join(cells) +
                     f" | {_fmt(r['mean_A'])} |")
    return "\n".join(lines) + "\n"


# The plot of a combined result is the benchmark's own A_k plot (it draws the seed bands).
plot = plot_accuracy
