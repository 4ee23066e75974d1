"""A FastAPI app recorded by Profilis: JSON lines in ./profilis-logs, /metrics, a dashboard."""

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from profilis import AsyncCollector
from profilis.core.stats import StatsStore
from profilis.exporters.jsonl import JSONLExporter
from profilis.exporters.prometheus import PrometheusExporter
from profilis.fastapi import instrument_fastapi
from profilis.ui import make_ui_asgi_app

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

app = FastAPI()
app.mount("/_profilis", make_ui_asgi_app(stats))
instrument_fastapi(app, collector=collector, exclude_routes=["/metrics", "/_profilis"])


@app.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@app.get("/orders/{order_id}")
async def get_order(order_id: int) -> dict[str, object]:
    return {"id": order_id, "status": "shipped"}
