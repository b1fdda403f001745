"""Mutation testing of the core modules with mutmut: do the tests catch a small change to the code?

mutmut rewrites one operator, constant or call at a time (a *mutant*) and runs
the tests that cover it; a mutant the tests still pass on *survived*. The run
happens in a scratch copy of the committed tree (``git archive HEAD``), so the
working tree is never rewritten. Each survivor needs a verdict in
``benchmarks/mutation_verdicts.json``: ``equivalent: <why>`` when no test could
tell it apart (a log wording, an unreachable branch), otherwise a test is
added and the mutant is killed on the next run.

    python -m benchmarks.mutation            # the modules below; ~3 min on 2 cores
    python -m benchmarks.mutation --keep     # leave the scratch copy (to `mutmut show NAME` there)

Writes ``benchmarks/results/mutation.json``: ``metrics.score`` (killed / all
mutants, a mutant with no covering test counting as not killed), per module,
and every survivor with its verdict ("unjudged" when the verdicts file has none).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .common import write_result

REPO = Path(__file__).resolve().parents[1]
VERDICTS = Path(__file__).resolve().parent / "mutation_verdicts.json"
# module -> the unit tests that guard it (fast enough to run once per mutant)
MODULES = {
    "pipeline/post.py": ["tests/unit/test_post.py"],
    "graph_store/resolution/decision.py": ["tests/unit/test_resolution.py"],
}
NOT_YET = ["pipeline/images.py", "pipeline/to_graph.py", "pipeline/worker.py (fault boundary)",
           "extractors/zero_shot/labeller.py", "pipeline/console/app.py (forms)", "extractors/facts.py",
           "extractors/fact_calibration.py", "graph_store/cypher.py (belief)"]
_RESULT = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+)$")


def _module_of(mutant: str) -> str:
    dotted = mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def run(keep: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mkg-mutation-"))
    try:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        tests = sorted({t for ts in MODULES.values() for t in ts})
        packages = ["mkg_common", "extractors", "graph_store", "pipeline", "continual", "benchmarks", "tests"]
        with open(work / "pyproject.toml", "a", encoding="utf-8") as fh:
            fh.write("\n[tool.mutmut]\n"
                     f"source_paths = {json.dumps(list(MODULES))}\n"
                     f"also_copy = {json.dumps(packages)}\n"
                     f"pytest_add_cli_args = {json.dumps(['-p', 'no:randomly', '-o', 'addopts='])}\n"
                     f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")
        mutmut = Path(sys.executable).with_name("mutmut")
        subprocess.run([str(mutmut), "run"], cwd=work, check=False, stdout=sys.stderr, stderr=sys.stderr)
        listing = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=work, capture_output=True,
                                 text=True).stdout
    finally:
        if keep:
            print(f"scratch copy kept at {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    statuses = {m["name"]: m["status"].strip() for m in map(_RESULT.match, listing.splitlines()) if m}
    verdicts = json.loads(VERDICTS.read_text()) if VERDICTS.exists() else {}
    per_module: dict[str, Counter] = {}
    survivors = []
    for name, status in sorted(statuses.items()):
        per_module.setdefault(_module_of(name), Counter())[status] += 1
        if status != "killed":
            survivors.append({"mutant": name, "status": status, "verdict": verdicts.get(name, "unjudged")})
    total = len(statuses)
    killed = sum(s == "killed" for s in statuses.values())
    return {"score": round(killed / total, 4) if total else None, "mutants": total, "killed": killed,
            "modules": {m: dict(c) for m, c in per_module.items()}, "tests": MODULES,
            "unjudged": sum(s["verdict"] == "unjudged" for s in survivors), "survivors": survivors,
            "not_yet_measured": NOT_YET}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy mutmut ran in")
    args = ap.parse_args(argv)
    metrics = run(args.keep)
    write_result("mutation", metrics, notes="mutmut 3.8.1 on the committed tree (git archive HEAD); a survivor "
                 "is judged in benchmarks/mutation_verdicts.json. Only the modules in metrics.tests are "
                 "measured so far; metrics.not_yet_measured lists the rest the issue names.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
