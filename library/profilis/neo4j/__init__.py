"""Neo4j integration: ``instrument_neo4j_module(neo4j, emitter)`` times every Cypher query.

The driver is not imported here: the functions work on the objects (or module) passed in.
"""

from profilis.neo4j.cypher import normalise_cypher
from profilis.neo4j.instrumentation import (
    Neo4jConfig,
    instrument_neo4j_module,
    instrument_neo4j_session,
)

__all__ = ["Neo4jConfig", "instrument_neo4j_module", "instrument_neo4j_session", "normalise_cypher"]
