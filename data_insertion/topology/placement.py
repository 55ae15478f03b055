"""Which database each model lives in: settings, the router and the engine all read it here.

It imports nothing of Django at run time, so settings can import it.

Django's own tables (auth, sessions, admin) stay in `default`; each of our models has a
database of its own, on SQLite files by default or on a server named by a URL.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.models import Model

APP_LABEL = "data_insertion"

# The one place that says where each model lives.
MODEL_DATABASES = {
    "user": "users_db",
    "product": "products_db",
    "order": "orders_db",
}
DEFAULT_DATABASE = "default"
ALIASES = (DEFAULT_DATABASE, *MODEL_DATABASES.values())
# Each alias's SQLite file in the data directory, and the variable that may put it on a server.
FILENAMES = {
    "default": "default.db",
    "users_db": "users.db",
    "products_db": "products.db",
    "orders_db": "orders.db",
}
URL_VARIABLES = {
    "default": "DEFAULT_DATABASE_URL",
    "users_db": "USERS_DATABASE_URL",
    "products_db": "PRODUCTS_DATABASE_URL",
    "orders_db": "ORDERS_DATABASE_URL",
}


def database_for_model(model: "type[Model] | Model") -> str:
    """The alias holding `model` (a class or an instance): ours by MODEL_DATABASES, Django's in
    default."""
    meta = model._meta
    if meta.app_label == APP_LABEL:
        return MODEL_DATABASES[meta.model_name]
    return DEFAULT_DATABASE


def database_for(model_name: str) -> str:
    """The alias holding the model called `model_name` ("user", "product", "order")."""
    return MODEL_DATABASES[model_name]


def allows_table(alias: str, app_label: str, model_name: str | None) -> bool:
    """Whether `alias` may hold that table: each of ours in its own database or its shards
    (users_db, users_db_0, users_db_1, ...), the shard map and Django's tables in default."""
    if app_label == APP_LABEL and model_name in MODEL_DATABASES:
        home = MODEL_DATABASES[model_name]
        shard = alias.removeprefix(f"{home}_")
        return alias == home or (shard != alias and shard.isdigit())
    return alias == DEFAULT_DATABASE
