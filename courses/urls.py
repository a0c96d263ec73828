from django.urls import path

from courses import (
    assessment_views,
    certificate_views,
    content_views,
    search_views,
    team_views,
    views,
)

app_name = "portal"

urlpatterns = [
    # The busiest paths come first, because Django tries the patterns in
    # order. Every pattern here matches whole paths, and no other one
    # matches these, so the order changes no match.
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/heartbeat/",
        content_views.heartbeat,
        name="heartbeat",
    ),
    path("courses/<slug:slug>/lessons/<int:lesson_id>/", views.lesson, name="lesson"),
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign-in"),
    # The fixed sign-in paths come before the token pattern; a token is 43
    # characters long, so it never equals one of them.
    path("sign-in/sent/", views.sign_in_sent, name="sign-in-sent"),
    path("sign-in/staff/", views.StaffSignInView.as_view(), name="staff-sign-in"),
    path("sign-in/<str:token>/", views.magic_link, name="magic-link"),
    path("sign-out/", views.sign_out, name="sign-out"),
    path("catalogue/", views.catalogue, name="catalogue"),
    path("search/", search_views.search, name="search"),
    path("team/", team_views.team, name="team"),
    path("team/<int:contact_id>/", team_views.member, name="team-member"),
    path(
        "catalogue/<slug:slug>/enroll/",
        views.catalogue_enroll,
        name="catalogue-enroll",
    ),
    path("courses/<slug:slug>/", views.course, name="course"),
    path(
        "courses/<slug:slug>/certificate.pdf",
        certificate_views.download,
        name="certificate",
    ),
    path(
        "certificates/<str:code>/",
        certificate_views.verify,
        name="verify-certificate",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/complete/",
        views.complete,
        name="complete-lesson",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/file/",
        content_views.lesson_file,
        name="lesson-file",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/session.ics",
        content_views.session_calendar,
        name="session-calendar",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/checklist/",
        content_views.checklist,
        name="checklist",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/attempts/",
        assessment_views.start,
        name="start-attempt",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/attempts/<int:attempt_id>/",
        assessment_views.result,
        name="attempt",
    ),
    path(
        "courses/<slug:slug>/lessons/<int:lesson_id>/attempts/<int:attempt_id>/submit/",
        assessment_views.submit,
        name="submit-attempt",
    ),
]
