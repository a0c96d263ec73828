from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "courses"
    verbose_name = "Courses"

    def ready(self) -> None:
        # Registers the learning condition kinds with the shared vocabulary
        # and the learning progress measure with the health registry, and the
        # learning sections and timeline source with the account page.
        from courses import conditions, health, timeline  # noqa: F401
