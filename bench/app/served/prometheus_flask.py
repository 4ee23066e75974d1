"""flask_app under prometheus_flask_exporter in gunicorn multiprocess mode (its documented
GunicornPrometheusMetrics; the exporter's HTTP server is started by gunicorn_prometheus.py).
"""

from flask_app import app
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

metrics = GunicornPrometheusMetrics(app)

__all__ = ["app"]
