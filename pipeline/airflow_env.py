"""The pipeline's :class:`Config` as Airflow tasks see it: file + Variable + Connections.

DAG files stay thin: every task calls :func:`load_config` and hands the
result to a package function. Settings come the Airflow way:

- Variable ``mkg_config``: path of the YAML config (else ``$MKG_CONFIG``, else
  the embedded defaults);
- Connection ``mkg_neo4j`` (type ``neo4j``, official Neo4j provider): when it
  exists the graph is Neo4j at its host/port, login, password and schema
  (database); URI rules (bolt/neo4j, +s/+ssc) are the provider's own;
- Connection ``mkg_kafka`` (type ``kafka``, official Kafka provider): its extra
  ``bootstrap.servers`` (and ``security.protocol``/``sasl.*``) switch the
  source to Kafka.

A missing connection is not an error (the embedded defaults keep working);
a connection that exists but is incomplete is.
"""
from __future__ import annotations

import logging
import os

from .config import Config, ConfigError, load_config as load_file_config

log = logging.getLogger(__name__)

CONFIG_VARIABLE = "mkg_config"
NEO4J_CONN_ID = "mkg_neo4j"
KAFKA_CONN_ID = "mkg_kafka"


def _connection(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _variable(key: str) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(key, default=None)
    except Exception:  # no metadata DB / API server reachable: fall back to the environment
        log.debug("Airflow Variable %s unavailable", key, exc_info=True)
        return None


def apply_neo4j_connection(cfg: Config, conn) -> None:
    from airflow.providers.neo4j.hooks.neo4j import Neo4jHook

    if not conn.host:
        raise ConfigError(f"Airflow connection {NEO4J_CONN_ID!r} has no host")
    cfg.graph.backend = "neo4j"
    cfg.graph.neo4j_uri = Neo4jHook(conn_id=conn.conn_id).get_uri(conn)
    if conn.login:
        cfg.graph.neo4j_user = conn.login
    if conn.password:
        cfg.graph.neo4j_password = conn.password
    if conn.schema:
        cfg.graph.neo4j_database = conn.schema


def apply_kafka_connection(cfg: Config, conn) -> None:
    extra = conn.extra_dejson or {}
    servers = extra.get("bootstrap.servers")
    if not servers:
        raise ConfigError(f"Airflow connection {KAFKA_CONN_ID!r} needs extra 'bootstrap.servers'")
    cfg.source.kind = "kafka"
    cfg.kafka.bootstrap_servers = servers
    if "security.protocol" in extra:
        cfg.kafka.security_protocol = extra["security.protocol"].upper()
    if "sasl.mechanism" in extra:
        cfg.kafka.sasl_mechanism = extra["sasl.mechanism"].upper()
    if "sasl.username" in extra:
        cfg.kafka.sasl_username = extra["sasl.username"]
    if "sasl.password" in extra:
        cfg.kafka.sasl_password = extra["sasl.password"]


def load_config() -> Config:
    """The config for an Airflow task (see the module docstring for the sources)."""
    path = _variable(CONFIG_VARIABLE) or os.environ.get("MKG_CONFIG") or None
    cfg = load_file_config(path)
    if (conn := _connection(NEO4J_CONN_ID)) is not None:
        apply_neo4j_connection(cfg, conn)
    if (conn := _connection(KAFKA_CONN_ID)) is not None:
        apply_kafka_connection(cfg, conn)
    return cfg
