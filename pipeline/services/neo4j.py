"""Neo4j Community 5.26 (embedded jars from Maven Central) serving Bolt on localhost.

Neo4j's server tarball is not on Maven Central, but ``org.neo4j:neo4j`` (embedded
Community, Bolt module included) is; a tiny launcher (``java/MkgNeo4j.java``) turns it
into a server process with auth, Bolt on ``host:bolt_port`` and a small memory budget.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import IO

from .base import Service, copy_maven_dependencies, run_quietly

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "poms" / "neo4j.xml"
_LAUNCHER = _HERE / "java" / "MkgNeo4j.java"

# Small heap: the dev box has 2 cores and also runs Kafka (the container image sizes its own).
_HEAP_FLAGS = ["-Xms256m", "-Xmx768m"]
# Same flags the Neo4j server scripts pass; without them the page cache and Netty
# fall back to slower reflection-free paths on Java 17+. The container image
# (deploy/neo4j) runs with these too.
JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dlog4j2.disable.jmx=true",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
]


def _jdk_tool(tool: str) -> str:
    """Prefer ``$JAVA_HOME`` so java and javac match; Neo4j 5.26 runs on Java 17 or 21."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / tool).exists():
        return str(Path(java_home) / "bin" / tool)
    found = shutil.which(tool)
    if not found:
        raise RuntimeError(f"{tool} not found; install a JDK 17+ or set JAVA_HOME")
    return found


class Neo4jService(Service):
    """Single Neo4j Community instance; user ``neo4j`` with the given password
    (an empty password runs with auth disabled)."""

    name = "neo4j"

    def __init__(self, host: str = "127.0.0.1", bolt_port: int = 7687,
                 password: str = "mkg-test-password") -> None:
        self.host = host
        self.bolt_port = bolt_port
        self.password = password

    @property
    def address(self) -> str:
        return f"bolt://{self.host}:{self.bolt_port}"

    def resolve(self, cache_dir: Path) -> None:
        """Fetch the jars and compile the launcher; a digest marker makes reruns free
        yet still notices an edited pom or launcher."""
        home = Path(cache_dir).resolve() / self.name
        lib, classes = home / "lib", home / "classes"
        marker = home / ".resolved"
        digest = hashlib.sha256(_POM.read_bytes() + _LAUNCHER.read_bytes()).hexdigest()
        if marker.exists() and marker.read_text().strip() == digest:
            return
        shutil.rmtree(classes, ignore_errors=True)
        copy_maven_dependencies(_POM.read_bytes(), lib)
        run_quietly([_jdk_tool("javac"), "--release", "17", "-nowarn", "-cp", f"{lib}/*",
                     "-d", str(classes), str(_LAUNCHER)])
        marker.write_text(digest + "\n")

    def launch(self, cache_dir: Path, run_dir: Path, log: IO[bytes]) -> subprocess.Popen:
        """Start the JVM; data and Neo4j's own logs go to ``run_dir`` (kept across restarts)."""
        # Absolute paths: the JVM runs with cwd=run_dir.
        home = Path(cache_dir).resolve() / self.name
        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        classpath = os.pathsep.join([str(home / "classes"), str(home / "lib" / "*")])
        # Password via env, not argv, so it does not show up in `ps`.
        env = {**os.environ, "MKG_NEO4J_PASSWORD": self.password}
        return subprocess.Popen(
            [_jdk_tool("java"), *_HEAP_FLAGS, *JVM_FLAGS, "-cp", classpath, "MkgNeo4j",
             str(run_dir), self.host, str(self.bolt_port)],
            cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def is_healthy(self) -> bool:
        """Bolt answers, the password is accepted and a query runs (2 s budget)."""
        try:
            from neo4j import GraphDatabase  # lazy: importing the module must not need the driver

            with GraphDatabase.driver(
                self.address, auth=("neo4j", self.password),
                connection_timeout=2.0, connection_acquisition_timeout=2.0,
                max_transaction_retry_time=0.0,
            ) as driver:
                driver.verify_connectivity()
                records, _, _ = driver.execute_query("RETURN 1 AS ok")
                return records[0]["ok"] == 1
        except Exception:
            return False
