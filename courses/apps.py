from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "courses"
    verbose_name = "Courses"

    def ready(self) -> None:
        # Registers the learning condition kinds with the shared vocabulary
        # and the learning progress measure with the health registry.
        from courses import conditions, health  # noqa: F401
