"""MongoDB integration (PyMongo, Motor): ``ProfilisCommandListener(emitter)`` emits a DB event
per command. Importing this package imports PyMongo.
"""

from profilis.mongo.instrumentation import MongoConfig, ProfilisCommandListener, describe_command

__all__ = ["MongoConfig", "ProfilisCommandListener", "describe_command"]
