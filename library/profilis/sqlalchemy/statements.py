"""SQL normalisation, as ``profilis.sqlalchemy`` has always exported it.

The code is ``profilis._sql`` (standard library only), shared with the integrations that must
not import SQLAlchemy (``profilis.pyodbc``).
"""

from profilis._sql import QUERY_MAX_LENGTH, Quoting, normalise_statement

__all__ = ["QUERY_MAX_LENGTH", "Quoting", "normalise_statement"]
