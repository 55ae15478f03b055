from django.apps import AppConfig


class DataInsertionConfig(AppConfig):
    name = "data_insertion"
    verbose_name = "Data insertion"
