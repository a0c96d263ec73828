"""Certificates of completion: issuing, revoking, verifying and the PDF.

A certificate is issued in the transaction that completes an enrollment,
when the course issues certificates. Its code is a random 128-bit token,
so a verification URL cannot be guessed from another one. The public
verification page shows the learner's name, the course and the dates, and
nothing else about the learner.
"""

import logging
import secrets
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from fpdf import FPDF

from courses.models import Certificate, Course, Enrollment

logger = logging.getLogger(__name__)

# Debian's fonts-dejavu-core; it covers far more scripts than the PDF core
# fonts, which only encode Latin-1.
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
UNICODE_BOLD_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def new_certificate_code() -> str:
    return secrets.token_hex(16)


def issue_certificate(locked: Enrollment, at: datetime) -> Certificate | None:
    """Issue the enrollment's certificate for its completed version once; return it.

    Returns None when the course issues no certificates. The caller holds
    the enrollment lock, so a second call finds and returns the first
    certificate, and the unique (enrollment, course_version) constraint
    backs that up. A recertification completes a newer version and so gets
    a certificate of its own.
    """
    course = Course.objects.get(pk=locked.course_id)
    if not course.issues_certificates:
        return None
    version = locked.completed_version or course.version
    existing = Certificate.objects.filter(
        enrollment=locked, course_version=version
    ).first()
    if existing is not None:
        return existing
    expires_at = (
        at + timedelta(days=course.certificate_valid_days)
        if course.certificate_valid_days
        else None
    )
    certificate = Certificate.objects.create(
        enrollment=locked,
        code=new_certificate_code(),
        learner_name=locked.contact.full_name or "Unnamed learner",
        course_title=course.title,
        course_version=version,
        issued_at=at,
        expires_at=expires_at,
    )
    logger.info("Issued certificate %s for enrollment %s", certificate.pk, locked.pk)
    return certificate


@transaction.atomic
def revoke_certificate(certificate: Certificate, at: datetime | None = None) -> bool:
    """Revoke a certificate so its verification page reports it not valid.

    Returns whether it changed; revoking twice keeps the first time.
    """
    revoked = Certificate.objects.filter(
        pk=certificate.pk, revoked_at__isnull=True
    ).update(revoked_at=at or timezone.now())
    if revoked:
        logger.info("Revoked certificate %s", certificate.pk)
    certificate.refresh_from_db()
    return bool(revoked)


def current_certificate(enrollment: Enrollment) -> Certificate | None:
    """Return the enrollment's newest certificate that is not revoked, if any."""
    return (
        Certificate.objects.filter(enrollment=enrollment, revoked_at__isnull=True)
        .order_by("-course_version", "-issued_at")
        .first()
    )


def verifiable_certificate(code: str) -> Certificate | None:
    """Return the certificate with this code unless it is unknown or revoked.

    An expired certificate is returned, and the page says it expired.
    """
    return Certificate.objects.filter(code=code, revoked_at__isnull=True).first()


def is_expired(certificate: Certificate, at: datetime | None = None) -> bool:
    now = at or timezone.now()
    return certificate.expires_at is not None and certificate.expires_at <= now


def verification_url(certificate: Certificate) -> str:
    path = reverse("portal:verify-certificate", kwargs={"code": certificate.code})
    return settings.SITE_URL + path


# --- The PDF ---------------------------------------------------------------------


def certificate_pdf(certificate: Certificate) -> bytes:
    """Render the certificate as a one-page landscape A4 PDF."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Certificate: {certificate.course_title}")
    pdf.set_creator("Nudgepath")
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    family = _font_family(pdf)
    text = _text_for(family)

    pdf.set_draw_color(29, 53, 87)
    pdf.set_line_width(1.5)
    pdf.rect(10, 10, pdf.w - 20, pdf.h - 20)

    pdf.set_y(40)
    pdf.set_font(family, "B", 30)
    pdf.cell(
        0, 16, "Certificate of completion", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(8)
    pdf.set_font(family, "", 14)
    pdf.cell(0, 10, "This certifies that", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "B", 26)
    pdf.cell(
        0, 16, text(certificate.learner_name), align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font(family, "", 14)
    pdf.cell(0, 10, "completed the course", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "B", 20)
    pdf.multi_cell(
        0, 12, text(certificate.course_title), align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(6)
    pdf.set_font(family, "", 12)
    pdf.cell(0, 8, _dates_line(certificate), align="C", new_x="LMARGIN", new_y="NEXT")

    url = verification_url(certificate)
    pdf.set_y(pdf.h - 45)
    pdf.set_font(family, "", 10)
    pdf.cell(
        0,
        6,
        f"Certificate id {certificate.code}, course version "
        f"{certificate.course_version}",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.cell(0, 6, "Verify at", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(26, 102, 194)
    pdf.cell(0, 6, url, align="C", link=url, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _dates_line(certificate: Certificate) -> str:
    issued = f"Issued on {certificate.issued_at:%d %B %Y}"
    if certificate.expires_at is None:
        return issued
    return f"{issued}, valid until {certificate.expires_at:%d %B %Y}"


def _font_family(pdf: FPDF) -> str:
    """Register a Unicode font when the system has one; return the family to use."""
    if UNICODE_FONT.is_file() and UNICODE_BOLD_FONT.is_file():
        pdf.add_font("DejaVu", "", str(UNICODE_FONT))
        pdf.add_font("DejaVu", "B", str(UNICODE_BOLD_FONT))
        return "DejaVu"
    return "Helvetica"


def _text_for(family: str) -> Callable[[str], str]:
    """Return a function that makes text printable in the font family."""
    if family != "Helvetica":
        return str
    return _to_latin1


def _to_latin1(value: str) -> str:
    # NOTE: without DejaVu, letters outside Latin-1 lose their accents or
    # become "?", because the PDF core fonts encode only Latin-1.
    characters = []
    for character in value:
        if ord(character) > 255:
            decomposed = unicodedata.normalize("NFKD", character)
            character = "".join(c for c in decomposed if not unicodedata.combining(c))
        characters.append(character)
    joined = "".join(characters)
    return joined.encode("latin-1", errors="replace").decode("latin-1")
