"""Lifecycle stages, their success criteria, and the current stage of each account."""

from django.conf import settings
from django.db import models


class Stage(models.Model):
    """A lifecycle stage: onboarding, adoption, expansion, renewal, advocacy."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    order = models.PositiveSmallIntegerField(unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.name


class SuccessCriterion(models.Model):
    """A measurable condition showing that an account completed its stage."""

    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="criteria")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # A condition tree in the shared vocabulary, evaluated over accounts.
    condition = models.JSONField()
    target_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days after entering the stage by which the criterion should be met.",
    )
    order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stage__order", "order", "id"]
        verbose_name_plural = "success criteria"

    def __str__(self) -> str:
        return f"{self.stage}: {self.name}"


class AccountStage(models.Model):
    """The current stage of one account."""

    account = models.OneToOneField(
        "customers.Account", on_delete=models.CASCADE, related_name="lifecycle"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="accounts")
    entered_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account} in {self.stage}"


class CriterionMet(models.Model):
    """When an account first met a success criterion."""

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="criteria_met"
    )
    criterion = models.ForeignKey(
        SuccessCriterion, on_delete=models.CASCADE, related_name="met_by"
    )
    met_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "criterion met"
        verbose_name_plural = "criteria met"
        ordering = ["account", "met_at"]
        constraints = [
            # A criterion is met once per account; re-evaluation inserts or ignores.
            models.UniqueConstraint(
                fields=["account", "criterion"], name="criterion_met_once_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} met {self.criterion} at {self.met_at:%Y-%m-%d}"


class StageChangeSource(models.TextChoices):
    CRITERIA = "criteria", "Success criteria met"
    MANUAL = "manual", "Set by a CSM"
    INITIAL = "initial", "First stage at signup"


class StageChange(models.Model):
    """One move of an account between stages: the stage history."""

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="stage_changes"
    )
    from_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()
    source = models.CharField(max_length=20, choices=StageChangeSource.choices)
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "changed_at", "id"]
        indexes = [models.Index(fields=["account", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.account}: {self.from_stage} to {self.to_stage}"
