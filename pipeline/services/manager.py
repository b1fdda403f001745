"""Start, check and stop the local Kafka and Neo4j servers by recorded PID.

State (data, logs, PID files) lives in one run directory, by default
``$MKG_SERVICES_DIR`` or a fixed folder under the system temp dir, so that
``mkg services down`` in another shell finds what ``up`` started.

A PID file names a process only while that process is the one it recorded:
after a crash or a reboot the number may belong to any other program, and the
manager (and the test suite, which wipes and stops "its" servers) must never
take that program for its server. So the file records the process's start
time and command line beside its PID, and a PID whose live process differs in
either is treated as gone.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .base import Service, default_cache_dir

log = logging.getLogger(__name__)


def default_run_dir() -> Path:
    return Path(os.environ.get("MKG_SERVICES_DIR", Path(tempfile.gettempdir()) / "mkg-services"))


def all_services() -> dict[str, Service]:
    from .kafka import KafkaService
    from .neo4j import Neo4jService

    kafka_port = int(os.environ.get("MKG_KAFKA_PORT", 9092))
    bolt_port = int(os.environ.get("MKG_NEO4J_BOLT_PORT", 7687))
    password = os.environ.get("MKG_NEO4J_PASSWORD", "mkg-test-password")
    return {
        "kafka": KafkaService(port=kafka_port, controller_port=kafka_port + 1),
        "neo4j": Neo4jService(bolt_port=bolt_port, password=password),
    }


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    address: str


class ServiceManager:
    def __init__(self, run_dir: Path | None = None, cache_dir: Path | None = None,
                 services: dict[str, Service] | None = None) -> None:
        self.run_dir = Path(run_dir or default_run_dir())
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self.services = services or all_services()
        self._children: dict[str, object] = {}  # Popen objects we started, reaped on down

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / name / "pid"

    def pid(self, name: str) -> int | None:
        """The PID of the server this manager started, or None: no PID file, the process is gone, or
        the PID now belongs to another process (its start time or command line differ)."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        recorded = json.loads(path.read_text())
        pid = int(recorded["pid"])
        if not _alive(pid):
            return None
        now = process_identity(pid)
        if now is None or [now[0], now[1]] != [recorded.get("started"), recorded.get("cmdline")]:
            log.warning("pid file names another process; not ours", extra={"service": name, "pid": pid,
                                                                           "pid_file": str(path)})
            return None
        return pid

    def up(self, names: list[str], timeout_s: float = 180.0) -> list[ServiceStatus]:
        """Resolve jars, start what is not running, wait until all are healthy."""
        for name in names:
            self.services[name].resolve(self.cache_dir)
        for name in names:
            svc = self.services[name]
            if self.pid(name) is not None or svc.is_healthy():
                continue
            svc_dir = self.run_dir / name
            svc_dir.mkdir(parents=True, exist_ok=True)
            with open(svc_dir / "server.log", "ab") as log:
                proc = svc.launch(self.cache_dir, svc_dir, log)
            self._children[name] = proc
            identity = process_identity(proc.pid)
            started, cmdline = identity if identity is not None else (None, None)
            self._pid_file(name).write_text(json.dumps({"pid": proc.pid, "address": svc.address,
                                                        "started": started, "cmdline": cmdline}))
        deadline = time.monotonic() + timeout_s
        for name in names:
            svc = self.services[name]
            while not svc.is_healthy():
                if self.pid(name) is None:
                    raise RuntimeError(f"{name} exited during start-up; see {self.run_dir / name / 'server.log'}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not healthy after {timeout_s:.0f} s; see {self.run_dir / name / 'server.log'}")
                time.sleep(0.5)
        return self.status(names)

    def down(self, names: list[str], timeout_s: float = 60.0) -> None:
        """SIGTERM each recorded PID (its process group), SIGKILL after the timeout."""
        for name in names:
            pid = self.pid(name)
            child = self._children.pop(name, None)
            if pid is None and child is not None and child.poll() is None:
                pid = child.pid  # started by this very manager: ours whatever the PID file says now
            if pid is not None:
                _terminate(pid, timeout_s)
            if child is not None:
                child.wait(timeout=5)  # reap, so no zombie outlives the test session
            self._pid_file(name).unlink(missing_ok=True)

    def status(self, names: list[str]) -> list[ServiceStatus]:
        out = []
        for name in names:
            pid = self.pid(name)
            svc = self.services[name]
            out.append(ServiceStatus(name, pid, pid is not None, svc.is_healthy(), svc.address))
        return out


def process_identity(pid: int) -> tuple[float, list[str]] | None:
    """(start time, command line) of a live process: together they tell a reused PID from the
    process that had it. None when it is gone or cannot be read."""
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        deadline = time.monotonic() + 1.0
        while not cmdline and time.monotonic() < deadline:
            # just after Popen returns, the kernel may not show the new program's arguments yet
            time.sleep(0.01)
            cmdline = proc.cmdline()
        return proc.create_time(), cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _terminate(pid: int, timeout_s: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # servers run in their own session/group
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
