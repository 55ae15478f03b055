"""Routes each model to the database the topology gives it; Django's own tables stay in default.

A sharded model's row goes to the database its logical shard maps to (by the instance in the
hints, or the instance itself); a query with no row to go by reads the model's first database
(the scatter-gather reads, topology.shardmap.model_aliases, name every database themselves).
"""

from data_insertion.topology import shardmap
from data_insertion.topology.placement import allows_table, database_for_model


def _database(model, hints) -> str:
    instance = hints.get("instance", model)
    meta = instance._meta
    layout = shardmap.cached_layout(meta.model_name) if meta.app_label == "data_insertion" else None
    if layout is None:
        return database_for_model(model)
    if getattr(instance, "_state", None) is not None and instance._state.db:
        return instance._state.db  # a row read from, or saved to, one shard
    if isinstance(instance, type):
        return layout.aliases[0]
    return layout.alias_of_shard(shardmap.logical_shard_of(instance))


class ModelDatabaseRouter:
    def db_for_read(self, model, **hints):
        return _database(model, hints)

    def db_for_write(self, model, **hints):
        return _database(model, hints)

    def allow_relation(self, obj1, obj2, **hints):
        # A foreign key cannot span two databases: refuse it rather than let it dangle.
        return _database(obj1, {}) == _database(obj2, {})

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return allows_table(db, app_label, model_name)
