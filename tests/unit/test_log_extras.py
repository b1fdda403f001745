"""No log call passes ``extra`` keys that a LogRecord already has.

``logging`` raises KeyError for such a key, but only when the record is made,
that is when the call's level is enabled: ``log.info(..., extra={"name": ...})``
passes every test that runs at WARNING and crashes the first caller that logs
at INFO (a worker, a DAG task). Every ``extra={...}`` literal of the packages
is checked here, whatever level it logs at.
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mkg_common", "extractors", "graph_store", "pipeline", "continual", "dags", "benchmarks")
RESERVED = set(logging.LogRecord("n", logging.INFO, "p", 1, "m", (), None).__dict__) | {"message", "asctime"}


def clashes(source: str, filename: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
            out += [f"{filename}:{node.value.lineno} {k.value!r}" for k in node.value.keys
                    if isinstance(k, ast.Constant) and k.value in RESERVED]
    return out


def test_no_extra_key_overwrites_a_log_record_attribute():
    found = [c for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
             for c in clashes(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == []


def test_the_check_finds_a_clash():
    assert clashes('log.info("x", extra={"kind": 1, "name": 2})', "m.py") == ["m.py:1 'name'"]
