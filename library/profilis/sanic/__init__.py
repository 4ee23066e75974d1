"""Sanic integration: ``instrument_sanic_app(app, emitter)`` records every request's timing,
``profilis.sanic.ui.make_ui_blueprint`` serves the dashboard.

Importing this package imports Sanic; the rest of Profilis never does.
"""

from profilis.sanic.adapter import instrument_sanic_app

__all__ = ["instrument_sanic_app"]
