"""Routes each model to the database the topology gives it; Django's own tables stay in default."""

from data_insertion.topology.placement import allows_table, database_for_model


class ModelDatabaseRouter:
    def db_for_read(self, model, **hints):
        return database_for_model(model)

    def db_for_write(self, model, **hints):
        return database_for_model(model)

    def allow_relation(self, obj1, obj2, **hints):
        # A foreign key cannot span two databases: refuse it rather than let it dangle.
        return database_for_model(obj1) == database_for_model(obj2)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return allows_table(db, app_label, model_name)
