"""The account page's lifecycle actions, under /accounts/ beside customers' pages."""

from django.urls import path

from lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("<int:pk>/stage/", views.move_stage, name="move_stage"),
    path(
        "<int:pk>/checklist/<int:item_id>/tick/",
        views.tick_checklist_item,
        name="tick_item",
    ),
    path(
        "<int:pk>/checklist/<int:item_id>/untick/",
        views.untick_checklist_item,
        name="untick_item",
    ),
]
