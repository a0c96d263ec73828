"""The CSV import page, mounted under /admin/ behind the admin's staff login."""

from django.contrib import admin
from django.urls import path

from integrations.csv_import.admin_views import csv_import_view

app_name = "csv_import"

urlpatterns = [
    path("", admin.site.admin_view(csv_import_view), name="upload"),
]
