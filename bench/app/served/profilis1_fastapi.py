"""fastapi_app under Profilis 1.0: instrument_fastapi(app, Emitter(collector))."""

from fastapi_app import app, engine
from profilis1_common import collector_for_this_worker, instrument_database

from profilis.core.emitter import Emitter
from profilis.fastapi.adapter import instrument_fastapi

collector = collector_for_this_worker()
instrument_fastapi(app, Emitter(collector))
instrument_database(engine, collector)

__all__ = ["app"]
