"""FastAPI integration: ``instrument_fastapi(app, collector=...)`` (``profilis.asgi`` inside)."""

from profilis.fastapi.adapter import instrument_fastapi

__all__ = ["instrument_fastapi"]
