"""The one place that knows the databases: which model lives in which alias (placement.py),
how each alias is configured (databases.py), what each vendor does for a write transaction,
its uniqueness locks and its transient errors (backends/), and the cap on connections to
each server (connections.py). The router, the persistence layer and the engine ask it.
"""

from .backends import Backend, backend, is_transient
from .connections import LockNotAcquired, connection_scope
from .placement import ALIASES, MODEL_DATABASES, database_for, database_for_model

__all__ = [
    "ALIASES",
    "MODEL_DATABASES",
    "Backend",
    "LockNotAcquired",
    "backend",
    "connection_scope",
    "database_for",
    "database_for_model",
    "is_transient",
]
