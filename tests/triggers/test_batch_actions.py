"""Batch enrollments and sign-in links, as the actions of a sweep write them."""

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courses.models import Enrollment, SignInLink
from courses.services import (
    claim_sign_in_link,
    create_sign_in_urls,
    enroll,
    enroll_many,
)
from tests.factories import NOW, make_account, make_contact
from tests.triggers.factories import make_course

pytestmark = pytest.mark.django_db

ORIGIN = "trigger:welcome"


def token_of(url):
    # The magic-link path is /learn/sign-in/<token>/.
    return urlsplit(url).path.rstrip("/").rpartition("/")[2]


def test_enroll_many_creates_missing_pairs():
    first, second = make_contact(), make_contact()
    course = make_course()

    created = enroll_many(
        [(first.pk, course.pk), (second.pk, course.pk), (first.pk, course.pk)],
        source="automatic",
        origin=ORIGIN,
        at=NOW,
    )

    assert created == {(first.pk, course.pk), (second.pk, course.pk)}
    rows = Enrollment.objects.filter(course=course)
    assert rows.count() == 2
    for row in rows:
        assert row.source == "automatic"
        assert row.origin == ORIGIN
        assert row.enrolled_at == NOW
        assert row.status == "active"


def test_enroll_many_twice_creates_nothing():
    contact = make_contact()
    course = make_course()
    pairs = [(contact.pk, course.pk)]

    enroll_many(pairs, source="automatic", origin=ORIGIN, at=NOW)
    again = enroll_many(pairs, source="automatic", origin=ORIGIN, at=NOW)

    assert again == set()
    assert Enrollment.objects.count() == 1


def test_enroll_many_keeps_existing_enrollment():
    enrolled, newcomer = make_contact(), make_contact()
    course = make_course()
    manual, _ = enroll(enrolled, course, at=NOW - timedelta(days=30))

    created = enroll_many(
        [(enrolled.pk, course.pk), (newcomer.pk, course.pk)],
        source="automatic",
        origin=ORIGIN,
        at=NOW,
    )

    assert created == {(newcomer.pk, course.pk)}
    manual.refresh_from_db()
    assert manual.source == "manual"
    assert manual.enrolled_at == NOW - timedelta(days=30)


def test_enroll_many_constraint_decides_race(monkeypatch):
    # Another transaction enrolls one contact between enroll_many's read of
    # the existing pairs and its insert; the unique constraint keeps that row.
    raced, other = make_contact(), make_contact()
    course = make_course()
    real_bulk_create = Enrollment.objects.bulk_create

    def bulk_create_after_race(objs, **kwargs):
        Enrollment.objects.create(
            contact=raced, course=course, source="manual", enrolled_at=NOW
        )
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(Enrollment.objects, "bulk_create", bulk_create_after_race)
    created = enroll_many(
        [(raced.pk, course.pk), (other.pk, course.pk)],
        source="automatic",
        origin=ORIGIN,
        at=NOW,
    )

    assert created == {(other.pk, course.pk)}
    assert Enrollment.objects.filter(contact=raced).count() == 1
    assert Enrollment.objects.get(contact=raced).source == "manual"


def test_enroll_many_empty_runs_no_query():
    with CaptureQueriesContext(connection) as queries:
        assert enroll_many([], source="automatic", origin=ORIGIN, at=NOW) == set()

    assert len(queries) == 0


def enroll_many_queries(contact_count):
    account = make_account()
    course = make_course()
    pairs = [(make_contact(account).pk, course.pk) for _ in range(contact_count)]
    with CaptureQueriesContext(connection) as queries:
        created = enroll_many(pairs, source="automatic", origin=ORIGIN, at=NOW)
    assert len(created) == contact_count
    return len(queries)


def test_enroll_many_queries_independent_of_pairs():
    assert enroll_many_queries(5) == enroll_many_queries(50)


def test_sign_in_urls_one_working_link_each():
    contacts = [make_contact(), make_contact()]

    urls = create_sign_in_urls(contacts, "/learn/courses/getting-started/")

    assert set(urls) == {contact.pk for contact in contacts}
    assert len(set(urls.values())) == 2
    for contact in contacts:
        url = urls[contact.pk]
        assert url.startswith(f"{settings.SITE_URL}/learn/sign-in/")
        token = token_of(url)
        stored = SignInLink.objects.get(contact=contact)
        # Only the token's SHA-256 is stored, never the token.
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert stored.next_path == "/learn/courses/getting-started/"
        claimed = claim_sign_in_link(token)
        assert claimed is not None
        assert claimed.contact_id == contact.pk


def test_sign_in_urls_default_to_portal_home():
    contact = make_contact()

    create_sign_in_urls([contact])

    assert SignInLink.objects.get(contact=contact).next_path == "/learn/"


def sign_in_url_queries(contact_count):
    contacts = [make_contact() for _ in range(contact_count)]
    with CaptureQueriesContext(connection) as queries:
        urls = create_sign_in_urls(contacts)
    assert len(urls) == contact_count
    return len(queries)


def test_sign_in_urls_use_one_insert():
    assert sign_in_url_queries(5) == 1
    assert sign_in_url_queries(50) == 1
