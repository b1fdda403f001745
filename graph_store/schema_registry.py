"""The schema in the graph: which entity types and relations exist, and since when.

``(:SchemaClass {kind, name})`` nodes (graph_store.schema.SCHEMA_CLASS) record
when a class emerged (its first labelled example), when it was proposed as a
task, and which model version learned it. Only fixed Cypher with parameters:
class names are data here.
"""
from __future__ import annotations

from .base import GraphStore
from .schema import SCHEMA_CLASS

_KIND, _NAME = SCHEMA_CLASS.key
_UPSERT = (
    f"UNWIND $rows AS r MERGE (c:{SCHEMA_CLASS.label} {{{_KIND}: r.kind, {_NAME}: r.name}}) "
    "ON CREATE SET c.emerged_at = r.emerged_at, c.created_at = r.now "
    "SET c.status = r.status, c.updated_at = r.now, "
    "c.graph_type = r.graph_type, c.task_id = coalesce(r.task_id, c.task_id), "
    "c.examples = coalesce(r.examples, c.examples), "
    "c.model_version = coalesce(r.model_version, c.model_version), "
    "c.learned_at = CASE WHEN r.status = 'learned' AND c.learned_at IS NULL THEN r.now ELSE c.learned_at END"
)
_ROW_KEYS = ("kind", "name", "graph_type", "status", "emerged_at", "now", "task_id", "examples", "model_version")


def record_classes(graph: GraphStore, rows: list[dict]) -> None:
    """Upsert schema classes; each row: kind, name, graph_type, status, emerged_at, now,
    and optionally task_id, examples, model_version."""
    graph.execute([(_UPSERT, {"rows": [{k: r.get(k) for k in _ROW_KEYS} for r in rows]})])


_WITH_STATUS = (f"MATCH (c:{SCHEMA_CLASS.label}) WHERE c.{_KIND} = $kind AND c.status IN $statuses "
                f"RETURN c.{_NAME} ORDER BY c.{_NAME}")


def classes_with_status(graph: GraphStore, kind: str, statuses: list[str]) -> list[str]:
    """Names of the recorded classes of ``kind`` (``mre``, ``mner``) in one of ``statuses``."""
    return [row[0] for row in graph.query(_WITH_STATUS, {"kind": kind, "statuses": list(statuses)}).rows]
