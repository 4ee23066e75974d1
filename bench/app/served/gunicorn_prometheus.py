"""gunicorn config for prometheus_flask_exporter's multiprocess mode, as its README gives it:
the master serves the aggregated /metrics on BENCH_APP_METRICS_PORT, dead workers are marked.
"""

import os
from typing import Any

from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics


def when_ready(server: Any) -> None:
    GunicornPrometheusMetrics.start_http_server_when_ready(
        int(os.environ["BENCH_APP_METRICS_PORT"])
    )


def child_exit(server: Any, worker: Any) -> None:
    GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
