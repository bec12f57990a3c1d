"""The gateway's requests reach Ray's metrics export (what the dashboard and Prometheus
scrape), and every shared garden_* metric is registered there."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.ray

#: Ray flushes metrics to its exporter every few seconds (metrics_report_interval_ms).
EXPORT_TIMEOUT_S = 90


def _scrape(ray) -> str:
    text = ""
    for node in ray.nodes():
        if node.get("Alive") and node.get("MetricsExportPort"):
            url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            text += httpx.get(url, timeout=10).text
    return text


def test_gateway_requests_show_up_in_the_prometheus_export(alice, ray_cluster):
    for _ in range(3):
        assert alice.get("/v1/datasets").status_code == 200
    assert alice.get("/v1/datasets/ds_missing").status_code == 404
    deadline = time.monotonic() + EXPORT_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        text = _scrape(ray_cluster)
        if "garden_requests_total" in text and 'status="4xx"' in text:
            break
        time.sleep(2)
    lines = [ln for ln in text.splitlines() if ln.startswith("ray_garden_requests_total")]
    api = [ln for ln in lines if 'kind="api"' in ln and 'model="gateway"' in ln]
    assert any('status="2xx"' in ln for ln in api), lines
    assert any('status="4xx"' in ln for ln in api), lines
    assert "ray_garden_request_latency_seconds_bucket" in text
