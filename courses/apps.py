from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "courses"
    verbose_name = "Courses"

    def ready(self) -> None:
        # Registers the learning condition kinds with the shared vocabulary.
        from courses import conditions  # noqa: F401
