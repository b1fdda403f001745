"""Neo4j backend: one managed write transaction per batch, UNWIND rows.

A batch's statements (one per entity type, one per relation type present, one
for the posts) run one after another in that transaction rather than as one
statement of ``CALL {}`` subqueries: measured here, the joined statement saved
nothing in throughput, and planning it took about 2 s, which Neo4j repeats
whenever the graph's statistics shift (a growing graph: often), and which then
dominated the end-to-end latency at low input rates. Each statement on its own
is small, cached by its text, and cheap to replan.

The driver's ``execute_write`` already retries transient errors for up to
``max_transaction_retry_time``; outages that outlast it surface as
:class:`GraphUnavailable` and the worker backs off without committing.
Errors about the statements or their data (``ClientError``, ``DatabaseError``)
surface as :class:`GraphRejected`: retrying them fails again, so the worker
splits the batch and dead-letters the post that causes them. A uniqueness
violation is the exception: our writes only MERGE, so it means two writers
raced to create one node, and a retry succeeds. So is the reverse case of a
transient error that no retry can cure: a batch larger than the server's
per-transaction memory (``db.memory.transaction.max``) fails the same way
every time, so it is :class:`GraphRejected` too, and the worker splits it
until the halves fit (a single post over the limit is dead-lettered with the
server's reason) instead of waiting on it forever.
"""
from __future__ import annotations

import logging

import neo4j
from neo4j.exceptions import (
    ClientError, ConstraintError, DatabaseError, ServiceUnavailable, SessionExpired, TransientError,
)

from .base import GraphRejected, GraphStore, GraphUnavailable, QueryResult
from .schema import LabelSchema, neo4j_constraints

log = logging.getLogger(__name__)

_OUTAGE = (ServiceUnavailable, SessionExpired, TransientError, ConstraintError, ConnectionError, OSError)
_REJECTED = (ClientError, DatabaseError)
# Client errors that are about the server or our credentials, not the data:
# every post would fail the same way, so they must not be dead-lettered.
_NOT_THE_DATA = ("Neo.ClientError.Security.", "Neo.ClientError.Database.", "Neo.ClientError.General.Forbidden",
                 "Neo.ClientError.Cluster.")
# The per-transaction memory limit: the same batch exceeds it on every retry. (The server-wide
# pool, db.memory.transaction.total.max, is shared with other writers and stays transient.)
_TOO_LARGE = "Neo.TransientError.General.MemoryPoolOutOfMemoryError"
_TOO_LARGE_SETTING = "db.memory.transaction.max "


def _too_large(exc: Exception) -> bool:
    return getattr(exc, "code", None) == _TOO_LARGE and _TOO_LARGE_SETTING in (getattr(exc, "message", None) or "")


class Neo4jGraphStore(GraphStore):
    def __init__(
        self,
        uri: str,
        user: str = "neo4j",
        password: str | None = None,
        database: str | None = None,
        schema: LabelSchema | None = None,
        max_retry_time: float = 10.0,
    ) -> None:
        super().__init__(schema)
        auth = (user, password) if password else None
        self._driver = neo4j.GraphDatabase.driver(
            uri, auth=auth, max_transaction_retry_time=max_retry_time, connection_timeout=5.0
        )
        self._database = database

    def ensure_schema(self) -> None:
        """A uniqueness constraint on every node kind's key (graph_store.schema.NODES)."""
        for stmt in neo4j_constraints():
            self._guard(lambda: self._driver.execute_query(stmt, database_=self._database))

    def _run_write(self, statements: list[tuple[str, dict]]) -> None:
        attempts = 0

        def work(tx: neo4j.ManagedTransaction) -> None:
            # the driver calls this again after a transient error (a deadlock
            # between two workers, a leader switch): count those retries
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                self.transaction_retries += 1
            for cypher, params in statements:
                tx.run(cypher, params).consume()

        def run() -> None:
            with self._driver.session(database=self._database) as session:
                session.execute_write(work)

        self._guard(run)

    def query(self, cypher: str, params: dict | None = None) -> QueryResult:
        records, _, keys = self._guard(
            lambda: self._driver.execute_query(cypher, params or {}, database_=self._database)
        )
        return QueryResult(list(keys), [[_plain(v) for v in rec.values()] for rec in records])

    def _guard(self, fn):
        try:
            return fn()
        except TransientError as exc:
            if _too_large(exc):
                raise GraphRejected(f"the transaction exceeds Neo4j's per-transaction memory: {exc}") from exc
            raise GraphUnavailable(f"Neo4j unavailable: {exc}") from exc
        except _OUTAGE as exc:
            raise GraphUnavailable(f"Neo4j unavailable: {exc}") from exc
        except _REJECTED as exc:
            if (getattr(exc, "code", None) or "").startswith(_NOT_THE_DATA):
                raise GraphUnavailable(f"Neo4j refused the connection or database: {exc}") from exc
            raise GraphRejected(f"Neo4j refused the statement: {exc}") from exc

    def close(self) -> None:
        self._driver.close()


def _plain(value):
    """Nodes and relationships as dicts, so tables print and compare simply."""
    if isinstance(value, neo4j.graph.Node):
        return {"labels": sorted(value.labels), **dict(value)}
    if isinstance(value, neo4j.graph.Relationship):
        return {"type": value.type, **dict(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
