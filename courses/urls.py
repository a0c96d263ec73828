from django.urls import path

from courses import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign-in"),
    path("sign-in/<str:token>/", views.magic_link, name="magic-link"),
    path("courses/<slug:slug>/", views.course, name="course"),
]
