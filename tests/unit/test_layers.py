"""The layer order of docs/ARCHITECTURE.md, checked on every import of every module.

Every ``.py`` file of the packages is parsed with :mod:`ast`; every import
counts, wherever it stands (module top, inside a function, under
``TYPE_CHECKING``), relative ones resolved against the file's package. A
failure names ``file:line`` of each import that runs against the order.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mkg_common", "extractors", "graph_store", "pipeline", "continual", "dags")

# What each layer must not import (dotted prefixes).
FORBIDDEN = {
    "mkg_common": ("extractors", "graph_store", "pipeline", "continual", "dags"),
    "extractors": ("graph_store", "pipeline", "continual", "dags"),
    "graph_store": ("extractors", "pipeline", "continual", "dags"),
    "pipeline": ("continual", "dags"),
    "continual": ("pipeline", "dags"),
    "dags": (),
}
# Nothing is tolerated against the order (the label schema moved to graph_store/schema.py).
TOLERATED: dict[str, tuple[str, ...]] = {}
# continual/ may read the pipeline's records (post schema, dead letters, observations, the source
# interface they come from), never its wiring (configuration, runtime, CLI, jobs).
CONTINUAL_MAY_READ = ("pipeline.post", "pipeline.dead_letter", "pipeline.observations", "pipeline.sources.base")
# Wiring modules: they read the configuration and open resources, so they may import anything
# (the web console is a user interface on top of every layer, as the CLI is).
WIRING = ("pipeline/cli.py", "pipeline/runtime.py", "pipeline/config.py", "pipeline/jobs/", "pipeline/console/",
          "continual/cli.py", "dags/")


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``path`` imports; ``from m import a`` gives ``m.a``."""
    rel = path.relative_to(root).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from (also for __init__)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return sorted(out)


def violations(root: Path) -> list[str]:
    found = []
    for layer in PACKAGES:
        for path in sorted((root / layer).rglob("*.py")):
            where = path.relative_to(root).as_posix()
            if where.startswith(WIRING):
                continue
            for line, name in imports_of(path, root):
                if not _within(name, FORBIDDEN[layer]) or _within(name, TOLERATED.get(layer, ())):
                    continue
                if layer == "continual" and _within(name, CONTINUAL_MAY_READ):
                    continue
                found.append(f"{where}:{line}: {layer} imports {name}")
    return found


def plant(root: Path, files: dict[str, str]) -> None:
    """A tree of the packages under ``root`` holding ``files`` (path -> source)."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for layer in PACKAGES:
        (root / layer).mkdir(exist_ok=True)


def test_no_import_runs_against_the_layer_order():
    found = violations(ROOT)
    assert not found, "imports against the layer order (docs/ARCHITECTURE.md):\n" + "\n".join(found)


def test_the_check_sees_imports_in_functions_relative_ones_and_type_checking(tmp_path):
    """The checker itself: planted imports of each form are reported with file and line; allowed ones are not."""
    files = {
        "graph_store/__init__.py": "",
        "graph_store/completion/__init__.py": "",
        "graph_store/completion/job.py": ("from typing import TYPE_CHECKING\n"
                                          "from extractors.schema import LabelSchema\n"
                                          "if TYPE_CHECKING:\n    from pipeline.config import Config\n"
                                          "def run():\n    from extractors import store\n"),
        "pipeline/__init__.py": "",
        "pipeline/worker.py": "from .post import Post\nfrom ..continual import novelty\n",
        "pipeline/cli.py": "import continual.cli\n",
        "continual/__init__.py": "",
        "continual/novelty.py": "from pipeline.post import parse_post\nimport pipeline.runtime\n",
        "extractors/__init__.py": "",
        "extractors/run.py": "def f():\n    import graph_store.base\n",
    }
    plant(tmp_path, files)
    assert violations(tmp_path) == [
        "extractors/run.py:2: extractors imports graph_store.base",
        "graph_store/completion/job.py:2: graph_store imports extractors.schema.LabelSchema",
        "graph_store/completion/job.py:4: graph_store imports pipeline.config.Config",
        "graph_store/completion/job.py:6: graph_store imports extractors.store",
        "pipeline/worker.py:2: pipeline imports continual.novelty",
        "continual/novelty.py:2: continual imports pipeline.runtime",
    ]


def import_cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (every import counts,
    lazy ones in functions included: a lazy import hides a cycle, it does not remove it)."""
    modules = {}
    for layer in PACKAGES:
        for path in (root / layer).rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            modules[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path

    def module_of(name: str) -> str | None:  # "extractors.kinds.MNER" -> "extractors.kinds"
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, path in modules.items():
        for _, name in imports_of(path, root):
            target = module_of(name)
            if target and target != m and not m.startswith(target + "."):  # its own package's __init__
                graph[m].add(target)
    # strongly connected components (Tarjan), iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return sorted(cycles)


def test_no_modules_import_each_other():
    cycles = import_cycles(ROOT)
    assert not cycles, f"import cycles (lazy imports count): {cycles}"


def test_the_cycle_check_finds_a_loop_hidden_by_a_lazy_import(tmp_path):
    files = {
        "extractors/__init__.py": "",
        "extractors/kinds.py": "def task():\n    from .tasks import RETask\n",
        "extractors/tasks.py": "from .kinds import MRE\n",
        "extractors/metrics.py": "from .kinds import MRE\n",  # one way only: no cycle
        "graph_store/__init__.py": "",
        "graph_store/a.py": "import graph_store.b\n",
        "graph_store/b.py": "import graph_store.c\n",
        "graph_store/c.py": "from graph_store import a\n",
    }
    plant(tmp_path, files)
    assert import_cycles(tmp_path) == [["extractors.kinds", "extractors.tasks"],
                                       ["graph_store.a", "graph_store.b", "graph_store.c"]]
