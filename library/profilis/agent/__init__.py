"""The zero-code agent: what the operator injects into an app's pods.

``profilis-agent install DIR`` (``profilis.agent.cli``) copies this package and a bootstrap
``sitecustomize.py`` into DIR; with DIR first on ``PYTHONPATH`` every Python process of the
app runs ``start()`` (``profilis.agent.bootstrap``), which instruments Flask, Starlette/FastAPI,
SQLAlchemy and plain WSGI apps as they are imported, and ships their events to the sidecar.
Importing this package loads the standard library and ``profilis`` only.
"""

from profilis.agent.bootstrap import current_agent, start

__all__ = ["current_agent", "start"]
