"""Neo4j backend: one managed write transaction per batch, UNWIND rows.

The driver's ``execute_write`` already retries transient errors for up to
``max_transaction_retry_time``; outages that outlast it surface as
:class:`GraphUnavailable` and the worker backs off without committing.
"""
from __future__ import annotations

import logging

import neo4j
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

from extractors.schema import LabelSchema

from .base import GraphStore, GraphUnavailable, QueryResult

log = logging.getLogger(__name__)

CONSTRAINTS = (
    "CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE e.key IS UNIQUE",
    "CREATE CONSTRAINT post_id IF NOT EXISTS FOR (p:Post) REQUIRE p.id IS UNIQUE",
    "CREATE CONSTRAINT schema_class IF NOT EXISTS FOR (c:SchemaClass) REQUIRE (c.kind, c.name) IS UNIQUE",
    "CREATE CONSTRAINT candidate_relation IF NOT EXISTS FOR (c:CandidateRelation) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT candidate_type IF NOT EXISTS FOR (c:CandidateType) REQUIRE c.id IS UNIQUE",
)
_OUTAGE = (ServiceUnavailable, SessionExpired, TransientError, ConnectionError, OSError)


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
        for stmt in CONSTRAINTS:
            self._guard(lambda: self._driver.execute_query(stmt, database_=self._database))

    def _run_write(self, statements: list[tuple[str, dict]]) -> None:
        def work(tx: neo4j.ManagedTransaction) -> None:
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
        except _OUTAGE as exc:
            raise GraphUnavailable(f"Neo4j unavailable: {exc}") from exc

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
