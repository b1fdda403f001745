"""A worker's HTTP endpoints: ``/metrics`` for Prometheus, ``/livez`` and ``/readyz`` for orchestrators.

Liveness means the worker loop keeps turning (a poll, a batch, a wait for the
graph all count): a worker stuck for ``stale_after_s`` should be restarted.
Readiness means it is doing its job now: the source answered and the graph
took the last write. A worker waiting out a graph outage is alive but not
ready, so compose or Kubernetes restarts nothing and routes no alarms to it
while the graph is down.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import WorkerMetrics

log = logging.getLogger(__name__)


class HealthServer:
    """Serves the endpoints from a daemon thread; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(self, metrics: WorkerMetrics, host: str = "127.0.0.1", port: int = 9400,
                 stale_after_s: float = 300.0) -> None:
        self.metrics = metrics
        self.stale_after_s = stale_after_s
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(server.metrics.registry), CONTENT_TYPE_LATEST)
                elif path == "/livez":
                    age = time.monotonic() - server.metrics.last_loop
                    alive = age < server.stale_after_s
                    self._send(200 if alive else 503, f"{'ok' if alive else 'stalled'}: loop turned {age:.1f} s ago\n")
                elif path == "/readyz":
                    ready = server.metrics.ready
                    self._send(200 if ready else 503, "ready\n" if ready else "not ready\n")
                else:
                    self._send(404, "not found: /metrics, /livez, /readyz\n")

            def _send(self, status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # scrapes every few seconds are not news
                pass

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(f"cannot serve worker metrics on {host}:{port}: {exc}") from exc
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mkg-health", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("serving worker metrics", extra={"address": f"{self._httpd.server_address[0]}:{self.port}"})
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "HealthServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def probe(base_url: str, paths: tuple[str, ...] = ("/livez", "/readyz"), timeout_s: float = 3.0) -> list[str]:
    """What is wrong with a running worker's endpoints: one line per path that did not
    answer 200 (empty when healthy). The container health check runs this."""
    import urllib.error
    import urllib.request

    failures = []
    for path in paths:
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=timeout_s) as response:
                if response.status != 200:
                    failures.append(f"{path}: HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            failures.append(f"{path}: HTTP {exc.code} {exc.read().decode(errors='replace').strip()}")
        except OSError as exc:
            failures.append(f"{path}: {exc}")
    return failures


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.health [URL]``: exit 0 when the worker is live and ready."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.health",
        description="Health check of a running worker: exit 0 when /livez and /readyz answer 200, "
                    "1 otherwise (what failed goes to stderr). Used by the compose and image health checks.")
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:9100",
                        help="where the worker serves (mkg worker --metrics-port); default %(default)s")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per request (default %(default)s)")
    args = parser.parse_args(argv)
    failures = probe(args.url, timeout_s=args.timeout)
    for line in failures:
        print(line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
