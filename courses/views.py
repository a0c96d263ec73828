"""Portal views; placeholders until the portal is built."""

from django.http import HttpRequest, HttpResponse


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Portal")


def sign_in(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Sign in")


def magic_link(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponse("Magic link")


def course(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(slug)
