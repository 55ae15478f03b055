"""Routes each model of data_insertion to its own database; Django's own tables stay in default."""

from django.db.models import Model

APP_LABEL = "data_insertion"

# The one place that says where each model lives.
MODEL_DATABASES = {
    "user": "users_db",
    "product": "products_db",
    "order": "orders_db",
}


def database_for_model(model: type[Model] | Model) -> str:
    meta = model._meta
    if meta.app_label == APP_LABEL:
        return MODEL_DATABASES[meta.model_name]
    return "default"


class ModelDatabaseRouter:
    def db_for_read(self, model, **hints):
        return database_for_model(model)

    def db_for_write(self, model, **hints):
        return database_for_model(model)

    def allow_relation(self, obj1, obj2, **hints):
        # A foreign key cannot span two databases: refuse it rather than let it dangle.
        return database_for_model(obj1) == database_for_model(obj2)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if app_label == APP_LABEL:
            return model_name is not None and MODEL_DATABASES.get(model_name) == db
        return db == "default"
