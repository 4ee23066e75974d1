"""The demo's summary: numbers read from sidecar metrics text the way a user reads them."""

from __future__ import annotations

import pytest

from demo.summary import Alerts, Snapshot, final_summary, quantile

METRICS = """\
# TYPE profilis_http_requests_total counter
profilis_http_requests_total{method="GET",route="/orders",service="shop",status="200"} 90
profilis_http_requests_total{method="POST",route="/payments",service="shop",status="500"} 10
# TYPE profilis_http_request_duration_seconds histogram
profilis_http_request_duration_seconds_bucket{le="0.01",method="GET",route="/orders"} 80
profilis_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/orders"} 90
profilis_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/orders"} 90
profilis_http_request_duration_seconds_count{method="GET",route="/orders"} 90
profilis_http_request_duration_seconds_sum{method="GET",route="/orders"} 1.2
# TYPE profilis_function_calls_total counter
profilis_function_calls_total{function="app.price_order",service="shop"} 12
# TYPE profilis_function_duration_seconds histogram
profilis_function_duration_seconds_bucket{function="app.price_order",le="0.005"} 12
profilis_function_duration_seconds_bucket{function="app.price_order",le="+Inf"} 12
profilis_function_duration_seconds_count{function="app.price_order"} 12
profilis_function_duration_seconds_sum{function="app.price_order"} 0.01
# TYPE profilis_db_queries_total counter
profilis_db_queries_total{db_vendor="sqlite",service="shop"} 70
# TYPE profilis_events_dropped_total counter
profilis_events_dropped_total{reason="queue"} 3
"""
STATUS = {
    "workers": [
        {"service": "shop", "queue_depth": 2, "queue_capacity": 100},
        {"service": "shop", "queue_depth": 0, "queue_capacity": 100},
    ]
}


def test_quantile_interpolates_inside_the_bucket_as_prometheus_does() -> None:
    buckets = {0.01: 50.0, 0.1: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.75, buckets) == pytest.approx(0.055)
    assert quantile(0.95, {}) is None


def test_final_summary_lists_routes_db_queries_workers_and_drops() -> None:
    snapshot = Snapshot()
    snapshot._add_metrics(METRICS)
    snapshot._add_status(STATUS)
    text = final_summary(snapshot, 30, Alerts(firing=("ProfilisQueueFilling",), received=1))
    assert "requests     100 (5xx 10)" in text
    assert "GET    /orders" in text and "POST   /payments" in text
    assert "functions    12 calls (@profile)" in text
    assert "  fn     app.price_order" in text
    assert "db queries   70 (sqlite 70)" in text
    assert "workers      2 (shop)" in text
    assert "queue depth  2 of 200" in text
    assert "drops        queue 3, transport 0, decode 0" in text
    assert "firing ProfilisQueueFilling; 1 in Alertmanager" in text
