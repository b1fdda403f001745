"""Fixtures: real servers (started by the project's own `mkg services`), graph stores.

Kafka and Neo4j are resolved from Maven Central and run on 127.0.0.1. If a
machine has no Java or no Maven, the integration tests are skipped with a
loud reason; they are never faked.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


from helpers import TEST_BOLT_PORT, TEST_KAFKA_PORT, TEST_SERVICES_DIR, unavailable  # noqa: E402  (after the sys.path line)


def pytest_report_header(config):
    return (f"test services: Kafka 127.0.0.1:{TEST_KAFKA_PORT}, Neo4j bolt 127.0.0.1:{TEST_BOLT_PORT}, "
            f"state in {TEST_SERVICES_DIR}")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def suite_service_manager():
    """A manager of the suite's own Kafka and Neo4j (not the ones `mkg services` runs)."""
    from pipeline.services.kafka import KafkaService
    from pipeline.services.manager import ServiceManager
    from pipeline.services.neo4j import Neo4jService

    services = {"kafka": KafkaService(port=TEST_KAFKA_PORT, controller_port=TEST_KAFKA_PORT + 1),
                "neo4j": Neo4jService(bolt_port=TEST_BOLT_PORT, password=neo4j_password())}
    return ServiceManager(run_dir=TEST_SERVICES_DIR, services=services)


@pytest.fixture(scope="session")
def services():
    """Real Kafka + Neo4j that this suite starts itself, on its own ports.

    Reuses only servers it started (their PID files are in its own run
    directory, e.g. left by an interrupted run); anything else listening on
    its ports is refused, never wiped.
    """
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        unavailable(f"INTEGRATION TESTS SKIPPED: {', '.join(missing)} not installed, cannot run real Kafka/Neo4j")
    manager = suite_service_manager()
    ports = {"kafka": [TEST_KAFKA_PORT, TEST_KAFKA_PORT + 1], "neo4j": [TEST_BOLT_PORT]}
    for name, svc in manager.services.items():
        foreign = [p for p in ports[name] if _listening(p)] if manager.pid(name) is None else []
        if foreign:
            pytest.fail(f"a server this test suite did not start listens on 127.0.0.1:{foreign[0]} ({name}); the "
                        "tests never touch it. Stop it, or give the suite other ports with MKG_TEST_KAFKA_PORT / "
                        "MKG_TEST_NEO4J_BOLT_PORT.")
    names = ["kafka", "neo4j"]
    manager.up(names, timeout_s=300)
    yield manager
    manager.down(names)


@pytest.fixture(scope="session")
def spacy_extractor():
    from extractors.spacy_ner import SpacyExtractor

    return SpacyExtractor()


@pytest.fixture
def short_tmp():
    """A short temp dir (unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="mkg-t-"))
    yield path
    from graph_store.embedded import EmbeddedGraphStore

    EmbeddedGraphStore.stop_server(path / "graph")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded_store(short_tmp):
    from graph_store.embedded import EmbeddedGraphStore

    store = EmbeddedGraphStore(short_tmp / "graph")
    store.ensure_schema()
    yield store
    store.close()


def neo4j_password() -> str:
    return os.environ.get("MKG_NEO4J_PASSWORD", "mkg-test-password")


@pytest.fixture
def neo4j_store(services):
    from graph_store.neo4j_backend import Neo4jGraphStore

    store = Neo4jGraphStore(services.services["neo4j"].address, "neo4j", neo4j_password())
    store.query("MATCH (n) DETACH DELETE n")
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture(params=["embedded", "neo4j"])
def graph_store(request):
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def topic(services):
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"posts-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=services.services["kafka"].address)
    admin.create_topics([NewTopic(name, 3, 1), NewTopic(name + ".dead", 1, 1)])
    admin.close()
    return name


REPO = Path(__file__).resolve().parents[1]


class AirflowRunner:
    """A real Airflow installation (SQLite metadata DB in a temp AIRFLOW_HOME) over ``dags/``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                    "PYTHONPATH": str(REPO)}
        for key in [k for k in self.env if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
            del self.env[key]

    def run(self, dag_id: str | None = None, conf: dict | None = None, env: dict | None = None,
            timeout: float = 1200) -> dict:
        import json
        import subprocess

        args = [sys.executable, str(REPO / "tests" / "airflow_runner.py")]
        if dag_id:
            args += [dag_id, json.dumps(conf or {})]
        proc = subprocess.run(args, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("MKG_RESULT ")]
        if proc.returncode != 0 or not lines:
            raise AssertionError(f"airflow run of {dag_id} failed (rc {proc.returncode}):\n"
                                 f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
        result = json.loads(lines[-1][len("MKG_RESULT "):])
        result["log"] = proc.stdout[-20000:] + proc.stderr[-20000:]
        return result


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    """``airflow db migrate`` once per session; ``airflow.run(dag_id, conf, env)`` does ``dag.test()``."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("airflow") is None:
        unavailable("apache-airflow not installed (pip install -e '.[airflow]')")
    runner = AirflowRunner(tmp_path_factory.mktemp("airflow-home"))
    airflow_bin = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow_bin), "db", "migrate"], env=runner.env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return runner
