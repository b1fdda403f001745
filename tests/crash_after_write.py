"""``mkg worker`` that is killed (SIGKILL, its own) right after its k-th successful graph write.

Test scaffolding, not production code: the crash window the worker's delivery
contract is about is *after* the graph write and *before* the source commit.
A kill at a random time rarely lands there; this wrapper makes it land there
every time. It wraps the store that ``pipeline.runtime.open_graph`` returns,
so the worker, source and commit path are the real ones.

Usage: python tests/crash_after_write.py K MARKER mkg-worker-args...
Before dying it writes MARKER (JSON): the ids of the k-th write's posts and how
many posts the earlier writes held.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pipeline.runtime as runtime
from pipeline.cli import main


def _crashing(open_graph, after: int, marker: Path):
    def open_crashing_graph(cfg):
        graph = open_graph(cfg)
        write = graph.write
        written_before = 0
        writes = 0

        def write_then_die(batch):
            nonlocal written_before, writes
            write(batch)  # returns only once the rows are stored
            writes += 1
            if writes == after:
                marker.write_text(json.dumps({"ids": sorted(p.id for p in batch.posts),
                                              "posts_before": written_before}))
                os.kill(os.getpid(), signal.SIGKILL)
            written_before += len(batch.posts)

        graph.write = write_then_die
        return graph

    return open_crashing_graph


if __name__ == "__main__":
    k, marker_path, *argv = sys.argv[1:]
    runtime.open_graph = _crashing(runtime.open_graph, int(k), Path(marker_path))
    sys.exit(main(argv))
