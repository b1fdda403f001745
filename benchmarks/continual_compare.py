"""Join continual-benchmark records of one setting into one table and plot.

Methods and seeds of a full-data benchmark run in separate processes (each
``python -m benchmarks.continual ... --result-name NAME`` writes its own
record); this puts them side by side, refusing records whose settings differ:

    python -m benchmarks.continual_compare benchmarks/results/continual_imre_sep10_full_*.json \\
        --plot benchmarks/plots/imre_sep10_full.png

Prints the Markdown table (mean +- std of the final A_k over seeds where a
method has several) and writes the PNG.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from continual.combine import combine, markdown, plot


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path, help="benchmarks/results/continual_*.json files")
    parser.add_argument("--plot", type=Path, help="write the A_k plot (PNG) here")
    args = parser.parse_args(argv)
    combined = combine([json.loads(p.read_text()) for p in args.records], names=[p.name for p in args.records])
    print(markdown(combined))
    if args.plot:
        print(f"plot: {plot(combined, args.plot)}")


if __name__ == "__main__":
    main()
