"""Settings of the internal-impact figures."""

from django.db import models


class ImpactSettings(models.Model):
    """The assumptions behind the internal-impact figures, one row for the site.

    Managers edit it in the admin. docs/decisions/0012-impact-settings-model.md
    explains why these live in the database and not in the environment.
    """

    # The only row's primary key; ImpactSettings.load() creates it on first use.
    SINGLETON_PK = 1

    minutes_per_manual_session = models.PositiveIntegerField(
        default=30,
        help_text=(
            "Minutes a CSM spends on one manual training session, such as "
            "enrolling a learner by hand or walking them through a course. "
            "Each automated enrollment and each of its completions counts as "
            "one session saved."
        ),
    )
    program_started_on = models.DateField(
        null=True,
        blank=True,
        help_text=(
            "The day the automated education program started (UTC). Onboarding "
            "that began before it is compared with onboarding that began on or "
            "after it. Blank hides that comparison."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "impact settings"
        verbose_name_plural = "impact settings"
        constraints = [
            # One row for the whole site, so every report reads the same values.
            models.CheckConstraint(
                condition=models.Q(pk=1), name="impact_settings_single_row"
            )
        ]

    def __str__(self) -> str:
        return "Impact settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "ImpactSettings":
        settings, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return settings
