"""The worker's /metrics, /livez and /readyz, served from a real HTTP server on a free port."""
from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.worker_group import http_get
from pipeline.health import HealthServer
from pipeline.metrics import WorkerMetrics


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_export_what_the_worker_counted():
    m = WorkerMetrics(model_version="mkg-multimodal@mner-1+mre-2")
    m.posts_written, m.transaction_retries = 7, 2
    m.dead_letters["parse"] += 3
    m.lag = {("posts", 0): 5, ("posts", 3): 0}
    with m.time_stage("graph"):
        pass
    m.committed([time.time() - 1.5, None])
    with HealthServer(m, port=0) as server:
        status, text = http_get(f"http://127.0.0.1:{server.port}/metrics")
    got = _samples(text)
    assert status == 200
    assert got[("mkg_posts_written_total", ())] == 7 and got[("mkg_transaction_retries_total", ())] == 2
    assert got[("mkg_dead_letters_total", (("stage", "parse"),))] == 3
    assert got[("mkg_consumer_lag", (("partition", "0"), ("topic", "posts")))] == 5
    assert got[("mkg_model_info", (("version", "mkg-multimodal@mner-1+mre-2"),))] == 1
    assert got[("mkg_stage_seconds_count", (("stage", "graph"),))] == 1
    assert got[("mkg_end_to_end_seconds_count", ())] == 1  # the record without a produce time is not counted
    assert 1.4 < got[("mkg_end_to_end_seconds_sum", ())] < 60


def test_readiness_follows_source_and_graph_and_liveness_the_loop():
    m = WorkerMetrics()
    with HealthServer(m, port=0, stale_after_s=5) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert http_get(url + "/readyz")[0] == 503  # the source has not answered yet
        m.source_ok = True
        assert http_get(url + "/readyz")[0] == 200
        m.graph_ok = False  # waiting out a graph outage: alive, not ready
        assert http_get(url + "/readyz")[0] == 503 and http_get(url + "/livez")[0] == 200
        m.last_loop = time.monotonic() - 10  # the loop has not turned for longer than stale_after_s
        assert http_get(url + "/livez")[0] == 503
        assert http_get(url + "/nothing")[0] == 404


def test_probe_is_the_container_health_check(capsys):
    """`python -m pipeline.health URL` (the compose health check) exits 0 only when live and ready."""
    from pipeline.health import main, probe

    m = WorkerMetrics()
    with HealthServer(m, port=0, stale_after_s=5) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert main([url]) == 1 and "/readyz: HTTP 503" in capsys.readouterr().err
        m.source_ok = True
        assert main([url]) == 0 and probe(url) == []
        m.last_loop = time.monotonic() - 10
        (failure,) = probe(url)
        assert failure.startswith("/livez: HTTP 503 stalled: loop turned 10.")
    assert main([url, "--timeout", "1"]) == 1  # nothing serves there any more
    assert "/livez" in capsys.readouterr().err
