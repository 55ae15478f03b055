from django.urls import path

from . import views

app_name = "web"
urlpatterns = [
    path("", views.run_list, name="runs"),
    path("runs/start", views.start, name="start"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("runs/<int:run_id>/stop", views.stop, name="stop"),
    path("runs/<int:run_id>/events", views.events, name="events"),
    path("runs/<int:run_id>/summary.json", views.summary_json, name="summary_json"),
    path("runs/<int:run_id>/report.pdf", views.report_pdf, name="report_pdf"),
    path("compare/", views.compare, name="compare"),
    path("health.json", views.health, name="health"),
]
