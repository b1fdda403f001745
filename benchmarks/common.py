"""Shared by every benchmark: the machine description and the JSON result file."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown memory"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, no GPU, Python {platform.python_version()}, {platform.system()}"


def git_commit(repo: Path = Path(__file__).parent) -> str:
    """HEAD, with ``-dirty`` when tracked files differ from it (the numbers then come from unrecorded code)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=repo).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# Taken when the benchmark starts, not when it writes its result hours later: commits made
# while it ran must not be credited with its numbers.
STARTED_AT_COMMIT = git_commit()


def write_result(name: str, metrics: dict, notes: str = "", module: str | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` with everything needed to reproduce it.

    ``module`` is the script that ran (default ``benchmarks.<name>``).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "metrics": metrics,
        "command": " ".join([Path(sys.executable).name, "-m", module or f"benchmarks.{name}", *sys.argv[1:]]),
        "git_commit": STARTED_AT_COMMIT,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "notes": notes,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path


def mnre_posts(n: int, split: str = "train") -> list[dict]:
    """Real MNRE tweets as wire posts (distinct texts)."""
    import ast

    posts, seen = [], set()
    for i, line in enumerate((SHARED_DATA / "mnre" / f"mnre_{split}.txt").read_text().splitlines()):
        text = " ".join(ast.literal_eval(line)["token"])
        if text not in seen:
            seen.add(text)
            posts.append({"id": f"mnre-{split}-{i}", "text": text, "created_at": "2026-01-01T00:00:00Z"})
            if len(posts) == n:
                break
    return posts


def clear_graph(store) -> None:
    """Empty a benchmark's Neo4j graph in chunks (one transaction of it would exceed the server's
    transaction memory cap), then ensure the schema. CALL IN TRANSACTIONS needs an implicit transaction."""
    with store._driver.session() as session:  # relationships first: a hub's DETACH DELETE would be one huge transaction
        session.run("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS").consume()
        session.run("MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()
    store.ensure_schema()


# The graph's rules for a fact, as the README and docs/ARCHITECTURE.md state them, written out here
# rather than imported: the worker tests compare the graph with these, so the code that maps an
# extraction to graph rows (pipeline.to_graph, graph_store.records) must not also make the expectation.
# A node's key is its type and its name in lower case, white space collapsed, these characters trimmed
# at both ends; a symmetric relation is one edge whose head is the smaller key.
_KEY_TRIM = " \t\"'`.,;:!?()[]{}<>#@"
_SYMMETRIC = {"SIBLINGS", "COUPLE", "NEIGHBOR", "PEER", "ALUMI", "ALTERNATE_NAMES"}


def expected_key(entity_type: str, name: str) -> str:
    return f"{entity_type}:{' '.join(name.split()).lower().strip(_KEY_TRIM)}"


def expected_facts(extractor, posts: list[dict]) -> dict[tuple[str, str, str], set[str]]:
    """What the graph must hold after ``posts`` go through ``extractor``: (head, type, tail) -> post ids,
    from the extractor's own mentions by the rules above (a fact between a node and itself is none)."""
    from pipeline.post import parse_post
    from pipeline.worker import extraction_input

    parsed = [parse_post(json.dumps(p)) for p in posts]
    out: dict[tuple[str, str, str], set[str]] = {}
    for post, ext in zip(parsed, extractor.extract([extraction_input(p) for p in parsed]), strict=True):
        for rel in ext.relations:
            head, tail = expected_key(rel.head.type, rel.head.text), expected_key(rel.tail.type, rel.tail.text)
            if head == tail:
                continue
            if rel.type in _SYMMETRIC and tail < head:
                head, tail = tail, head
            out.setdefault((head, rel.type, tail), set()).add(post.id)
    return out
