"""A real single-node Apache Kafka broker (KRaft, broker+controller) from Maven Central jars.

Running the genuine broker, not a mock, means tests exercise the same protocol,
group coordination and offset commits as production.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path
from typing import IO

from .base import Service, copy_maven_dependencies

_MARKER = ".resolved"
# Small heap: the dev box has 2 cores and also runs Neo4j. Log4j's own shutdown hook would
# stop logging before Kafka's shutdown hook has finished, so leave logging to the JVM exit.
_JVM_OPTS = [
    "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
    "-Dlog4j2.shutdownHookEnabled=false",
]

# Console-only logging: stdout is already redirected to the service log by the caller (the
# container image, deploy/kafka, logs with it too: docker keeps stdout).
LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _pom_bytes() -> bytes:
    """The shipped pom; read via importlib so it works from an installed package too."""
    return resources.files("pipeline.services").joinpath("poms/kafka.xml").read_bytes()


def _java() -> str:
    """Kafka 4.x targets Java 17; honour JAVA_HOME so a newer JDK can be swapped in."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java") or "java"


def _cluster_id() -> str:
    """Same format as ``kafka-storage random-uuid``: url-safe base64, no padding, no leading '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaService(Service):
    """Kafka broker on ``host:port`` with its KRaft controller on ``controller_port``."""

    name = "kafka"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        controller_port: int = 9093,
        num_partitions: int = 3,
    ) -> None:
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.num_partitions = num_partitions

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- resolve ---------------------------------------------------------------

    def resolve(self, cache_dir: Path) -> None:
        """Copy the broker's runtime jars into ``cache_dir/kafka/lib`` once per pom version."""
        home = Path(cache_dir) / self.name
        lib, marker = home / "lib", home / _MARKER
        pom = _pom_bytes()
        digest = hashlib.sha256(pom).hexdigest()
        if marker.exists() and marker.read_text().strip() == digest and any(lib.glob("*.jar")):
            return
        copy_maven_dependencies(pom, lib)
        marker.write_text(digest)

    # -- launch ----------------------------------------------------------------

    def _properties(self, run_dir: Path) -> str:
        """Minimal single-node KRaft config; replication factors of 1 since there is one node."""
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(run_dir / "data"),
            "num.partitions": str(self.num_partitions),
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # default 50 is wasted work on one node
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Posts may carry images (and the dead-letter copy of a rejected
            # 5 MB post must fit too): allow 16 MiB records, as the client config does.
            "message.max.bytes": str(16 * 1024 * 1024),
            "replica.fetch.max.bytes": str(16 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def launch(self, cache_dir: Path, run_dir: Path, log: IO[bytes]) -> subprocess.Popen:
        """Write config, format storage on first use (keeps data across restarts), start kafka.Kafka."""
        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        config, log4j = run_dir / "server.properties", run_dir / "log4j2.properties"
        config.write_text(self._properties(run_dir))
        log4j.write_text(LOG4J2)
        java = [
            _java(), *_JVM_OPTS,
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={run_dir / 'logs'}",
            "-cp", str(Path(cache_dir).resolve() / self.name / "lib" / "*"),
        ]
        if not (run_dir / "data" / "meta.properties").exists():
            subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", _cluster_id(), "-c", str(config)],
                stdout=log, stderr=subprocess.STDOUT, check=True,
            )
        return subprocess.Popen(
            [*java, "kafka.Kafka", str(config)],
            cwd=run_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    # -- health ----------------------------------------------------------------

    def is_healthy(self) -> bool:
        """Ready once a metadata round trip (list topics) succeeds; bounded to ~2 s, never raises."""
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(
                bootstrap_servers=self.address, client_id="mkg-health",
                request_timeout_ms=2000, bootstrap_timeout_ms=2000,
                reconnect_backoff_max_ms=500,
            )
            try:
                admin.list_topics()
                return True
            finally:
                admin.close()
        except Exception:
            return False
