from django.apps import AppConfig


class DataInsertionConfig(AppConfig):
    name = "data_insertion"
    verbose_name = "Data insertion"

    def ready(self) -> None:
        # Deletes and changes of users and products reach the shared cache (its signals).
        from . import reference_cache  # noqa: F401
