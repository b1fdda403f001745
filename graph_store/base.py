"""The one interface the pipeline writes to and users query through."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .cypher import COUNT_INFERRED, POST_HASHES, REMOVE_INFERRED, batch_statements, inferred_statements
from .records import GraphBatch, InferredFact
from .schema import LabelSchema


class GraphUnavailable(RuntimeError):
    """The backend cannot be reached right now; the caller may retry later.

    Transient by definition: an outage, a lock timeout, a full disk. The same
    batch can succeed once the condition passes, so the worker backs off and
    retries (up to its limit) and commits nothing meanwhile.
    """


class GraphRejected(RuntimeError):
    """The backend refused the statements themselves (not transient).

    Retrying the same data fails the same way, so the worker splits the batch
    to find the post that causes it and dead-letters that post (stage ``graph``).
    """


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]


class GraphStore(ABC):
    """A Cypher graph that stores extracted facts with provenance."""

    def __init__(self, schema: LabelSchema | None = None) -> None:
        self.schema = schema or LabelSchema()
        # write transactions the backend ran again after a transient error (deadlock,
        # lock timeout); the worker exports it, so contention between workers shows
        self.transaction_retries = 0

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create uniqueness constraints / indexes (idempotent, run at start-up)."""

    def write(self, batch: GraphBatch) -> None:
        """Write one batch atomically where the backend allows; idempotent.

        Validates every label and relationship type first, so a bad batch
        raises :class:`graph_store.schema.SchemaViolation` and writes nothing.
        """
        statements = batch_statements(batch, self.schema)
        if statements:
            self._run_write(statements)

    def post_hashes(self, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Stored ``(content_hash, text)`` of the posts among ``ids`` (the hash is
        None for a post written before hashes existed): the conflict check."""
        if not ids:
            return {}
        return {pid: (digest, text) for pid, digest, text in self.query(POST_HASHES, {"ids": ids}).rows}

    def execute(self, statements: list[tuple[str, dict]]) -> None:
        """Run fixed, parameterised write statements in one transaction.

        For statements whose text never contains model output (values travel
        as parameters), e.g. the schema registry and candidate nodes.
        """
        if statements:
            self._run_write(statements)

    def write_inferred(self, facts: list[InferredFact], run_id: str) -> None:
        """Replace the completion's edges with ``facts`` (one transaction on Neo4j).

        Upserts each fact as an ``inferred: true`` edge (skipping facts that
        exist as extracted edges), then deletes inferred edges not written by
        ``run_id``; extracted edges are never touched.
        """
        self._run_write(inferred_statements(facts, run_id, self.schema))

    def count_inferred(self) -> int:
        """How many inferred edges (the completion model's predictions) the graph holds."""
        (count,) = self.query(COUNT_INFERRED).rows[0]
        return int(count)

    def remove_inferred(self) -> int:
        """Delete every inferred edge (only those); returns how many there were."""
        count = self.count_inferred()
        self._run_write([(REMOVE_INFERRED, {})])
        return count

    @abstractmethod
    def _run_write(self, statements: list[tuple[str, dict]]) -> None:
        """Run validated statements, raising :class:`GraphUnavailable` on outage."""

    @abstractmethod
    def query(self, cypher: str, params: dict | None = None) -> QueryResult:
        """Run a read (or admin) query and return its table."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
