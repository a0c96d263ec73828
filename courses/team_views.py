"""The champion's team pages in the portal.

Both pages return 404, never 403, to a contact who is not a champion and
for a contact of another account, so the pages do not reveal which ids
exist or who the champions are.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from courses.team import NotAChampion, member_scores, team_member, team_overview
from courses.views import contact_required
from customers.models import Contact


@contact_required
@require_http_methods(["GET", "HEAD"])
def team(request: HttpRequest, contact: Contact) -> HttpResponse:
    try:
        members = team_overview(contact)
    except NotAChampion:
        raise Http404("The team page is for your account's champion.") from None
    context = {"account": contact.account, "members": members}
    return render(request, "portal/team.html", context)


@contact_required
@require_http_methods(["GET", "HEAD"])
def member(request: HttpRequest, contact: Contact, contact_id: int) -> HttpResponse:
    try:
        found = team_member(contact, contact_id)
    except LookupError:
        # NotAChampion is a LookupError too, and gets the same 404.
        raise Http404("No such contact on your team.") from None
    context = {"member": found, "scores": member_scores(found)}
    return render(request, "portal/team_member.html", context)
