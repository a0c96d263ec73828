from django.urls import path

from metrics import views

app_name = "metrics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("outcomes.csv", views.outcomes_csv, name="outcomes-csv"),
    path("changes.csv", views.changes_csv, name="changes-csv"),
    path(
        "holdout-outcomes.csv",
        views.holdout_outcomes_csv,
        name="holdout-outcomes-csv",
    ),
    path("engagement.csv", views.engagement_csv, name="engagement-csv"),
    path("scores.csv", views.scores_csv, name="scores-csv"),
    path("impact.csv", views.impact_csv, name="impact-csv"),
    path("holdouts/", views.holdouts, name="holdouts"),
    path("holdouts.csv", views.holdouts_csv, name="holdouts-csv"),
]
