"""Common shape of a local server (Kafka, Neo4j) run from Maven Central jars.

A service knows how to fetch its jars (``resolve``), how to launch itself
(``launch``) and how to tell it is ready (``is_healthy``). Everything about
PID files, waiting and stopping lives once, in :mod:`pipeline.services.manager`.
"""
from __future__ import annotations

import os
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO


def default_cache_dir() -> Path:
    """Jars live outside git; ``MKG_CACHE_DIR`` overrides the location."""
    return Path(os.environ.get("MKG_CACHE_DIR", Path.home() / ".cache" / "mkg")) / "services"


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
