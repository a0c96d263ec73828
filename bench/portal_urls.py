"""The URLs of bench.portal's server: the project's own plus a bare view.

The bare view returns "ok" through the same middleware as every portal page,
so the benchmark can print the portal's figures beside what any Django
view costs on the same machine in the same run.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("config.urls")),
]
