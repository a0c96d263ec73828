from django.urls import path

from customers import account_views

app_name = "accounts"

urlpatterns = [
    path("", account_views.account_list, name="list"),
    path("attention/", account_views.account_attention, name="attention"),
    path("<int:pk>/", account_views.account_detail, name="detail"),
]
