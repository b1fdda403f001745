"""Class-incremental benchmarks (IMRE / IMNER), recorded in benchmarks/results/.

Same options as ``mkg benchmark``:
    python -m benchmarks.continual imre --split sep10 --methods mspt,replay,finetune
    python -m benchmarks.continual imner --order PLOM
    python -m benchmarks.continual imre --methods mspt-no-memory,mspt --result-name continual_imre_sep10_ablation
    python -m benchmarks.continual imre --tasks 2 --limit 150 --epochs 1 --methods mspt,finetune   # small CI run
Writes the full report to --out (CSV, JSON, Markdown, plots) and the summary
to ``benchmarks/results/continual_<benchmark>.json``.
"""
from __future__ import annotations

import argparse

from continual.benchmark import run_benchmark, summary
from extractors.kinds import MNER, MRE, kind_of_benchmark
from continual.cli import add_benchmark_options, config_from_args, setup_benchmark_logging

from .common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for kind, help in ((MRE, "IMRE (relations)"), (MNER, "IMNER (entity types)")):
        p = sub.add_parser(kind.benchmark, help=help)
        add_benchmark_options(p, kind.name)
        p.add_argument("--result-name", help="results file name (default continual_<benchmark>, e.g. "
                                             "continual_imre_sep10); give another to keep an earlier record")
    args = parser.parse_args()
    setup_benchmark_logging(args)
    result = run_benchmark(config_from_args(args, kind_of_benchmark(args.benchmark).name))
    name = args.result_name or "continual_" + result["benchmark"].replace("-", "_")
    write_result(name, {**summary(result), "report": result["files"]}, module="benchmarks.continual",
                 notes="text only (the IMRE/IMNER sets ship no images: the vision stream sees the learned "
                       "no-image tokens); A_k on the cumulative test set, U_k on task k's new classes")


if __name__ == "__main__":
    main()
