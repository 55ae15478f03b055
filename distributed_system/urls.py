from django.contrib import admin
from django.urls import include, path

from data_insertion.web.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("data_insertion.web.urls")),
]
