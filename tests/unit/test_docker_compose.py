"""The production stack's files, checked defect by defect (issue #22's list).

These run everywhere; `make compose-test` (deploy/compose_test.py) starts the stack for
real on a machine with a Docker engine and records the result in
benchmarks/results/compose.json.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.requirements import requirements
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services() -> dict:
    return compose()["services"]


def workers() -> dict:
    return {name: svc for name, svc in services().items() if name.startswith("worker")}


def dockerfile_stages(path: Path) -> dict[str, list[str]]:
    """stage name (or its index) -> its instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            parts = line.split()
            current = parts[3] if len(parts) > 3 and parts[2].upper() == "AS" else str(len(stages))
            stages[current] = [line]
        elif current is not None:
            stages[current].append(line)
    return stages


def defaults(value: str) -> str:
    """A compose value with each ``${VAR:-default}`` replaced by its default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def final_user(path: Path, stage: str | None = None) -> str:
    stages = dockerfile_stages(path)
    lines = stages[stage] if stage else list(stages.values())[-1]
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    return users[-1] if users else "root"


def test_every_service_has_a_health_check_or_is_the_one_shot_init():
    for name, svc in services().items():
        if name == "airflow-init":
            assert svc["restart"] == "no"
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_health_checks_only_read_variables_their_container_has():
    """The old Neo4j check read $NEO4J_PASSWORD, which the neo4j container did not have."""
    for name, svc in services().items():
        test = " ".join(map(str, svc.get("healthcheck", {}).get("test", [])))
        env = set((svc.get("environment") or {}))
        for var in re.findall(r"\$\$\{?(\w+)", test):
            assert var in env | {"HOSTNAME"}, f"{name}'s health check reads ${var}, which it lacks"


def test_kafka_volume_is_its_log_dir_and_the_host_listener_is_published():
    kafka = services()["kafka"]
    props = subprocess.run(["bash", str(ROOT / "deploy/kafka/entrypoint.sh"), "config"], check=True,
                           capture_output=True, text=True,
                           env={**os.environ, **{k: str(v) for k, v in kafka["environment"].items()},
                                "KAFKA_HOST_ADVERTISED": "127.0.0.1:19092"}).stdout
    config = dict(line.split("=", 1) for line in props.splitlines())
    (volume,) = kafka["volumes"]
    assert volume.split(":", 1)[1] == config["log.dirs"]
    (port,) = kafka["ports"]
    host_ip, host_port, container_port = defaults(port).split(":")
    assert host_ip == "127.0.0.1" and container_port == "19092"
    assert defaults(kafka["environment"]["KAFKA_HOST_ADVERTISED"]) == f"127.0.0.1:{host_port}"
    assert "HOST://0.0.0.0:19092" in config["listeners"]
    assert "HOST://127.0.0.1:19092" in config["advertised.listeners"]
    assert "INTERNAL://kafka:9092" in config["advertised.listeners"]


def test_kafka_settings_pass_through_from_the_environment():
    props = subprocess.run(["bash", str(ROOT / "deploy/kafka/entrypoint.sh"), "config"], check=True,
                           capture_output=True, text=True,
                           env={**os.environ, "KAFKA_CFG_LOG_RETENTION_HOURS": "48"}).stdout
    assert "log.retention.hours=48" in props.splitlines()


def test_every_published_port_binds_loopback_only():
    for name, svc in services().items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_one_service_per_gpu_each_with_its_own_device_and_cuda():
    gpu = {n: s for n, s in workers().items() if "gpu" in s.get("profiles", [])}
    assert len(gpu) >= 2
    device_ids = []
    for name, svc in gpu.items():
        assert svc["environment"]["MKG__EXTRACTOR__DEVICE"] == "cuda", name
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert "gpu" in device["capabilities"] and "count" not in device
        device_ids += device["device_ids"]
    assert len(device_ids) == len(set(device_ids)) == len(gpu), f"GPUs shared: {device_ids}"
    cpu = [s for s in workers().values() if "cpu" in s.get("profiles", [])]
    assert cpu and all(s["environment"]["MKG__EXTRACTOR__DEVICE"] == "cpu" and "deploy" not in s for s in cpu)


def test_workers_wait_for_healthy_servers_and_their_health_check_is_the_worker_endpoints():
    for name, svc in workers().items():
        for dep in ("kafka", "neo4j"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy"
        assert svc["stop_signal"] == "SIGTERM"
        port = svc["command"][svc["command"].index("--metrics-port") + 1]
        test = svc["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "pipeline.health"] and test[4].endswith(f":{port}"), name
        assert svc["environment"]["MKG__WORKER__METRICS_HOST"] == "0.0.0.0"


def test_airflow_runs_as_its_components_on_postgres_from_our_image():
    svcs = services()
    airflow = {n: s for n, s in svcs.items() if n.startswith("airflow-") and n != "airflow-init"}
    assert {s["command"][0] for s in airflow.values()} == AIRFLOW_COMPONENTS
    assert "standalone" not in str(svcs)
    for name, svc in {**airflow, "airflow-init": svcs["airflow-init"]}.items():
        env = svc["environment"]
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env, name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert re.fullmatch(r"\$\{MKG_IMAGE_PREFIX:-mkg/\}airflow:\$\{MKG_TAG:-latest\}", svc["image"]), name
        assert svc["depends_on"].get("airflow-init", {}).get("condition") in (None, "service_completed_successfully")
    assert "postgres" in svcs and svcs["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "airflow" in dockerfile_stages(ROOT / "Dockerfile"), "the airflow image is a target of our Dockerfile"
    assert any(req.startswith("psycopg2") for req in requirements(str(ROOT / "pyproject.toml"), "airflow"))


def test_airflow_and_workers_share_a_model_volume_both_users_can_write():
    svcs = services()
    users = {final_user(ROOT / "Dockerfile", "worker"), final_user(ROOT / "Dockerfile", "airflow")}
    assert len(users) == 1 and users.pop().split(":")[0] == "50000"
    python_stage = " ".join(dockerfile_stages(ROOT / "Dockerfile")["python"])
    assert re.search(r"install -d -o 50000 .*/var/lib/mkg ", python_stage), "the volume's mount point is owned by the image user"
    for name in ("airflow-scheduler", "worker-cpu", "worker-gpu0"):
        assert "mkg-var:/var/lib/mkg" in svcs[name]["volumes"], name
    assert (svcs["airflow-scheduler"]["environment"]["MKG__EXTRACTOR__MODELS_DIR"]
            == svcs["worker-cpu"]["environment"]["MKG__EXTRACTOR__MODELS_DIR"])
    assert {"AIRFLOW_CONN_MKG_NEO4J", "AIRFLOW_CONN_MKG_KAFKA"} <= set(svcs["airflow-scheduler"]["environment"])


@pytest.mark.parametrize("dockerfile,stage", [
    ("Dockerfile", "worker"), ("Dockerfile", "airflow"),
    ("deploy/kafka/Dockerfile", None), ("deploy/neo4j/Dockerfile", None), ("deploy/postgres/Dockerfile", None),
])
def test_images_run_as_a_non_root_user(dockerfile, stage):
    user = final_user(ROOT / dockerfile, stage)
    assert user.split(":")[0] not in ("root", "0"), f"{dockerfile} {stage or ''} runs as {user}"


def test_dependencies_install_before_the_source_is_copied():
    stages = dockerfile_stages(ROOT / "Dockerfile")
    deps = stages["deps"]
    copied = [line.split()[1:-1] for line in deps if line.upper().startswith("COPY")]
    assert copied == [["pyproject.toml", "deploy/requirements.py"]], "the dependency layer sees only pyproject.toml"
    assert any("pip install -r" in line for line in deps)
    for stage in ("worker", "airflow"):
        assert stages[stage][0].split()[1] in ("deps", "airflow-deps"), "app targets build on the dependency layer"


def test_dockerignore_keeps_local_state_out_of_the_context():
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "an allow-list: nothing is sent unless named"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    assert {".venv", "var", ".git", "build", "benchmarks", "tests", ".env"}.isdisjoint(allowed)
    for stage_lines in dockerfile_stages(ROOT / "Dockerfile").values():
        for line in stage_lines:
            if line.upper().startswith("COPY") and "--from" not in line:
                for src in line.split()[1:-1]:
                    if not src.startswith("--"):
                        assert src in allowed, f"COPY {src} is excluded by .dockerignore"


def test_requirements_are_the_pyproject_pins():
    core = requirements(str(ROOT / "pyproject.toml"), None)
    assert any(r.startswith("torch==") for r in core) and all("==" in r for r in core)
    assert not any(r.startswith("apache-airflow") for r in core)
    with pytest.raises(SystemExit):
        requirements(str(ROOT / "pyproject.toml"), "no-such-extra")


def test_worker_environment_is_a_valid_config():
    for name, svc in workers().items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        env["MKG_NEO4J_PASSWORD"] = "from-env"  # the file only references the secret
        cfg = load_config(None, environ=env)
        assert cfg.source.kind == "kafka" and cfg.graph.backend == "neo4j"
        assert cfg.kafka.bootstrap_servers == "kafka:9092"
        assert cfg.graph.neo4j_password.get_secret_value() == "from-env"
        assert cfg.extractor.device in ("cpu", "cuda"), name


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "mkg-test-password" not in text
    for var in ("NEO4J_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD", "MKG_UI_PASSWORD"):
        assert "${" + var + ":?" in text, f"{var} must come from the environment and be required"


def test_console_environment_is_a_valid_config_that_may_bind_beyond_loopback():
    from pipeline.console import check_binding

    svc = services()["console"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    env.update(MKG_NEO4J_PASSWORD="from-env", MKG_UI_PASSWORD="from-env-too", MKG_UI_SECRET_KEY="")
    cfg = load_config(None, environ=env)
    assert cfg.graph.backend == "neo4j" and cfg.ui.password.get_secret_value() == "from-env-too"
    workers_scraped = {u.split("//")[1].split(":")[0] for u in cfg.ui.metrics_urls}
    assert workers_scraped == set(workers())  # every worker service, whichever profile runs
    cfg.ui.host = svc["command"][svc["command"].index("--host") + 1]
    check_binding(cfg)  # 0.0.0.0 in the container is allowed because a password is required
