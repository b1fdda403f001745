"""docker-compose.yml is checked structurally (no Docker engine here)."""
from pathlib import Path

import yaml

from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_health_checks():
    services = compose()["services"]
    assert {"kafka", "neo4j", "airflow", "worker"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no health check"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["neo4j"]["image"].startswith("neo4j:5")


def test_workers_wait_for_healthy_servers_and_reserve_a_gpu():
    worker = compose()["services"]["worker"]
    for dep in ("kafka", "neo4j"):
        assert worker["depends_on"][dep]["condition"] == "service_healthy"
    assert "${WORKERS" in str(worker["deploy"]["replicas"])
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert "gpu" in device["capabilities"]
    assert worker["stop_signal"] == "SIGTERM"
    assert (ROOT / worker["build"] / "Dockerfile").exists()


def test_worker_environment_is_a_valid_config():
    env = {k: str(v) for k, v in compose()["services"]["worker"]["environment"].items()}
    env["MKG_NEO4J_PASSWORD"] = "from-env"  # the file only references the secret
    cfg = load_config(None, environ=env)
    assert cfg.source.kind == "kafka" and cfg.graph.backend == "neo4j"
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert cfg.graph.neo4j_password.get_secret_value() == "from-env"


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "mkg-test-password" not in text
    assert "${NEO4J_PASSWORD" in text


def test_airflow_and_workers_share_the_model_store_and_use_the_mkg_connections():
    services = compose()["services"]
    airflow, worker = services["airflow"], services["worker"]
    assert any(v.endswith(":/var/lib/mkg") for v in airflow["volumes"])
    assert any(v.endswith(":/var/lib/mkg") for v in worker["volumes"])
    assert airflow["environment"]["MKG__EXTRACTOR__MODELS_DIR"] == worker["environment"]["MKG__EXTRACTOR__MODELS_DIR"]
    assert {"AIRFLOW_CONN_MKG_NEO4J", "AIRFLOW_CONN_MKG_KAFKA"} <= set(airflow["environment"])
    assert airflow["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/mkg/dags"
