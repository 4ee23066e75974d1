"""fastapi_app under prometheus-fastapi-instrumentator; /metrics on the app itself (it
aggregates across uvicorn's workers because PROMETHEUS_MULTIPROC_DIR is set).
"""

from fastapi_app import app
from prometheus_fastapi_instrumentator import Instrumentator

Instrumentator().instrument(app).expose(app)

__all__ = ["app"]
