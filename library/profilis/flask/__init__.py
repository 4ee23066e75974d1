"""Flask integration: ``ProfilisFlask(app, collector=...)`` records every request's timing.

Importing this package imports Flask; the rest of Profilis never does.
"""

from profilis.flask.adapter import ProfilisFlask, flask_route

__all__ = ["ProfilisFlask", "flask_route"]
