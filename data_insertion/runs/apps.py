from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "data_insertion.runs"
    label = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"
