"""N ``mkg worker`` processes in one consumer group, each serving /metrics on its own port.

Shared by the multi-worker benchmark and the multi-worker integration tests:
start the group, wait until every member is ready, scrape its Prometheus
endpoint, kill one, stop the rest.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class WorkerGroup:
    config: Path
    n: int
    env: dict = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self) -> "WorkerGroup":
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **self.env}
        for i in range(self.n):
            port = free_port()
            log = self.config.parent / f"worker-{i}.log"
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "pipeline.cli", "worker", "--config", str(self.config),
                     "--metrics-port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT))
            self.ports.append(port)
            self.logs.append(log)
        return self

    def url(self, i: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[i]}{path}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every member answers /readyz with 200 (its consumer polled, its graph is up)."""
        deadline = time.monotonic() + timeout
        pending = set(range(self.n))
        while pending and time.monotonic() < deadline:
            for i in sorted(pending):
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"worker {i} exited: {self.logs[i].read_text()[-3000:]}")
                try:
                    if http_get(self.url(i, "/readyz"), 2.0)[0] == 200:
                        pending.discard(i)
                except OSError:
                    pass
            time.sleep(0.3)
        if pending:
            raise TimeoutError(f"workers {sorted(pending)} not ready after {timeout} s")

    def scrape(self, i: int) -> dict[str, float]:
        """Member ``i``'s metrics: ``name{label=value,...}`` -> value (samples of every family)."""
        status, text = http_get(self.url(i, "/metrics"))
        if status != 200:
            raise RuntimeError(f"/metrics of worker {i} answered {status}")
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self, timeout: float = 60.0) -> list[int]:
        """SIGTERM every live member (each finishes its batch and commits); their exit codes."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes
