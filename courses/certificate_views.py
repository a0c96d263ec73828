"""Portal views for certificates: the learner's PDF and the public verification page."""

import logging

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from courses.certificates import (
    certificate_pdf,
    current_certificate,
    is_expired,
    verifiable_certificate,
)
from courses.services import enrollments_for
from courses.views import contact_required
from customers.models import Contact

logger = logging.getLogger(__name__)


@contact_required
@require_GET
def download(request: HttpRequest, contact: Contact, slug: str) -> HttpResponse:
    """Send the learner's own certificate for the course as a PDF."""
    enrollment = get_object_or_404(enrollments_for(contact), course__slug=slug)
    certificate = current_certificate(enrollment)
    if certificate is None:
        raise Http404("This course has no certificate of yours.")
    response = HttpResponse(
        certificate_pdf(certificate), content_type="application/pdf"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="certificate-{enrollment.course.slug}.pdf"'
    )
    return response


@require_GET
def verify(request: HttpRequest, code: str) -> HttpResponse:
    """Show who completed which course and when; 404 for unknown or revoked codes.

    Needs no sign-in, because employers and colleagues open it from the PDF.
    """
    certificate = verifiable_certificate(code)
    if certificate is None:
        logger.info("Verification of an unknown or revoked certificate code")
        return render(request, "portal/certificate_not_found.html", status=404)
    context = {
        "certificate": certificate,
        "expired": is_expired(certificate, timezone.now()),
    }
    response = render(request, "portal/certificate_verify.html", context)
    # The page names a person, so it stays out of shared caches and indexes.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response
