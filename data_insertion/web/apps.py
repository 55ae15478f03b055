from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "data_insertion.web"
    label = "web"
    verbose_name = "Dashboard and API"
