from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "courses"
    verbose_name = "Courses"

    def ready(self) -> None:
        # Registers the learning condition kinds with the shared vocabulary
        # and the learning progress measure with the health registry, the
        # learning sections and timeline source with the account page, and
        # the courses of each stage with lifecycle's Stage admin, and the
        # receivers that clear cached users.
        from courses import (  # noqa: F401
            auth_backends,
            conditions,
            health,
            stage_content,
            timeline,
        )
