"""flask_app under Profilis 1.0: ProfilisFlask(app, collector=...) as its README shows."""

from flask_app import app, engine
from profilis1_common import collector_for_this_worker, instrument_database

from profilis.flask.adapter import ProfilisFlask

collector = collector_for_this_worker()
ProfilisFlask(app, collector=collector)
instrument_database(engine, collector)

__all__ = ["app"]
