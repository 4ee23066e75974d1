"""A Flask app recorded by Profilis: JSON lines in ./profilis-logs, /metrics, a dashboard."""

from flask import Flask
from prometheus_client import CollectorRegistry

from profilis import AsyncCollector
from profilis.core.stats import StatsStore
from profilis.exporters.jsonl import JSONLExporter
from profilis.exporters.prometheus import PrometheusExporter, make_metrics_blueprint
from profilis.flask.adapter import ProfilisFlask
from profilis.flask.ui import make_ui_blueprint

registry = CollectorRegistry()
stats = StatsStore()
collector = AsyncCollector(
    [
        JSONLExporter("./profilis-logs", service="shop"),
        PrometheusExporter(registry, service="shop"),
        stats,
    ]
)
stats.attach(collector)

app = Flask(__name__)
ProfilisFlask(app, collector=collector, exclude_routes=["/metrics", "/_profilis"])
app.register_blueprint(make_metrics_blueprint(registry))
app.register_blueprint(make_ui_blueprint(stats, ui_prefix="/_profilis"))


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> dict[str, object]:
    return {"id": order_id, "status": "shipped"}
