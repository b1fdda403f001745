"""Common shape of a local server (Kafka, Neo4j) run from Maven Central jars.

A service knows how to fetch its jars (``resolve``), how to launch itself
(``launch``) and how to tell it is ready (``is_healthy``). Everything about
PID files, waiting and stopping lives once, in :mod:`pipeline.services.manager`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO


def default_cache_dir() -> Path:
    """Jars live outside git; ``MKG_CACHE_DIR`` overrides the location."""
    return Path(os.environ.get("MKG_CACHE_DIR", Path.home() / ".cache" / "mkg")) / "services"


def run_quietly(cmd: list[str], cwd: Path | None = None) -> None:
    """Run a build tool (mvn's jansi prints stray escape codes); show its output only on failure."""
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout[-4000:]}")


def copy_maven_dependencies(pom: bytes, lib: Path) -> None:
    """Resolve ``pom``'s runtime dependencies from Maven Central into ``lib`` (fresh).

    mvn runs on a scratch copy of the pom, so it never writes next to the
    package sources (which may be installed read-only).
    """
    shutil.rmtree(lib, ignore_errors=True)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        (Path(tmp) / "pom.xml").write_bytes(pom)
        run_quietly(["mvn", "-B", "-q", "-Dstyle.color=never", "dependency:copy-dependencies",
                     "-DincludeScope=runtime", f"-DoutputDirectory={lib}"], cwd=Path(tmp))


class Service(ABC):
    """One local server process."""

    name: str

    @abstractmethod
    def resolve(self, cache_dir: Path) -> None:
        """Download what the server needs into ``cache_dir/<name>`` (idempotent)."""

    @abstractmethod
    def launch(self, cache_dir: Path, run_dir: Path, log: IO[bytes]) -> subprocess.Popen:
        """Prepare ``run_dir`` (data, config) and start the server; do not wait."""

    @abstractmethod
    def is_healthy(self) -> bool:
        """True once clients can use the server."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients connect, e.g. ``127.0.0.1:9092`` or ``bolt://127.0.0.1:7687``."""
