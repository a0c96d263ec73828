"""The portal's search page: courses and lessons the signed-in contact may see."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from courses.search import MAX_QUERY_LENGTH, SearchInputError, search_portal
from courses.views import contact_required
from customers.models import Contact


@contact_required
@require_http_methods(["GET", "HEAD"])
def search(request: HttpRequest, contact: Contact) -> HttpResponse:
    query = request.GET.get("q", "")
    context = {
        "query": query.strip(),
        "max_length": MAX_QUERY_LENGTH,
        "hits": [],
        "error": "",
    }
    try:
        context["hits"] = search_portal(contact, query)
    except SearchInputError as exc:
        context["error"] = str(exc)
        return render(request, "portal/search.html", context, status=400)
    return render(request, "portal/search.html", context)
