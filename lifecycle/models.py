"""Lifecycle stages, their success criteria, the current stage of each account,
and the health weights that CSMs configure, by default and per stage."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from customers.models import Account


class Advancement(models.TextChoices):
    ALL = "all", "All success criteria met"
    CHOSEN = "chosen", "The chosen success criteria met"


class Stage(models.Model):
    """A lifecycle stage: onboarding, adoption, expansion, renewal, advocacy."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    order = models.PositiveSmallIntegerField(unique=True)
    description = models.TextField(blank=True)
    advancement = models.CharField(
        max_length=10,
        choices=Advancement.choices,
        default=Advancement.ALL,
        help_text=(
            "Which success criteria an account must meet before evaluation moves "
            'it to the next stage. With "chosen", tick "Required to advance" on '
            "each criterion that counts."
        ),
    )
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
    required_to_advance = models.BooleanField(
        default=True,
        help_text=(
            "Read only when the stage advances on the chosen criteria: whether "
            "an account must meet this one to move on. Unticked criteria are "
            "still recorded and shown."
        ),
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


class HealthSource(models.TextChoices):
    MEASURES = "measures", "Weighted measures"
    CRM_PROPERTY = "crm_property", "A CRM property of the account"


class HealthWeightSet(models.Model):
    """The weights of the health measures, for one stage or for every other account.

    The set without a stage is the default. A stage's set replaces it for
    the accounts in that stage on the scored day. lifecycle.health reads
    the sets; the admin validates them.
    """

    stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="health_weight_sets",
        help_text=(
            "Blank for the default set, which scores every account whose stage "
            "has no set of its own."
        ),
    )
    source = models.CharField(
        max_length=20,
        choices=HealthSource.choices,
        default=HealthSource.MEASURES,
        help_text=(
            "Weighted measures, or a score that the CRM already holds for the account."
        ),
    )
    crm_property = models.CharField(
        "CRM property",
        max_length=200,
        blank=True,
        help_text=(
            "With a CRM property source: the name of the custom property that "
            "holds a score from 0 to 100, as the CRM sync stores it."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = [models.F("stage__order").asc(nulls_first=True)]
        constraints = [
            # One default set (stage NULL counts as 0) and one set per stage,
            # so every account has exactly one set.
            models.UniqueConstraint(
                Coalesce("stage", models.Value(0)),
                name="one_health_weight_set_per_stage",
                violation_error_message=(
                    "A weight set for this stage already exists (or, without a "
                    "stage, the default set); edit that one instead."
                ),
            )
        ]

    def __str__(self) -> str:
        if self.stage_id is None:
            return "Default health weights"
        return f"Health weights for {self.stage}"

    @property
    def display_name(self) -> str:
        return "default" if self.stage is None else f"stage {self.stage.slug}"


class HealthWeight(models.Model):
    """The weight of one health measure in a weight set."""

    weight_set = models.ForeignKey(
        HealthWeightSet, on_delete=models.CASCADE, related_name="weights"
    )
    # The key of a measure in customers.health's registry.
    measure = models.CharField(max_length=40)
    weight = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["weight_set", "measure"]
        constraints = [
            models.UniqueConstraint(
                fields=["weight_set", "measure"], name="one_weight_per_measure"
            )
        ]

    def __str__(self) -> str:
        return f"{self.measure}: {self.weight}"


class AccountHealth(Account):
    """An account seen from its health: score, trend and each measure's part.

    A proxy, so the admin can show health beside the customer record
    without lifecycle changing customers' admin.
    """

    class Meta:
        proxy = True
        verbose_name = "account health"
        verbose_name_plural = "account health"


class ChecklistItem(models.Model):
    """A step of a stage's checklist, such as "invite 3 team members".

    Usage ticks it when event_name is set (dated by the first matching
    event), or a condition when one is set (dated by the evaluation that
    saw it hold). A CSM can tick any item by hand.
    """

    stage = models.ForeignKey(
        Stage, on_delete=models.CASCADE, related_name="checklist_items"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)
    event_name = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "A usage event with this name, sent by any contact of the account, "
            "ticks the item. Blank when no event does."
        ),
    )
    # A condition tree over accounts; NULL when no condition ticks the item.
    condition = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stage__order", "order", "id"]
        # "Account" distinguishes them from the checklist lessons of courses.
        verbose_name = "account checklist item"

    def __str__(self) -> str:
        return f"{self.stage}: {self.name}"


class ChecklistTickSource(models.TextChoices):
    EVENT = "event", "A usage event"
    CONDITION = "condition", "Its condition held"
    MANUAL = "manual", "Ticked by a CSM"


class ChecklistTick(models.Model):
    """When an account's checklist item was ticked, and by what."""

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="checklist_ticks"
    )
    item = models.ForeignKey(
        ChecklistItem, on_delete=models.CASCADE, related_name="ticks"
    )
    ticked_at = models.DateTimeField()
    source = models.CharField(max_length=20, choices=ChecklistTickSource.choices)
    ticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "ticked_at"]
        verbose_name = "account checklist tick"
        constraints = [
            # An item is ticked once per account; the job inserts or ignores.
            models.UniqueConstraint(
                fields=["account", "item"], name="checklist_item_ticked_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} ticked {self.item} at {self.ticked_at:%Y-%m-%d}"


class ChecklistUntick(models.Model):
    """A tick by hand that a CSM took back, and why. The tick itself is deleted.

    Only ticks by hand are taken back: a tick by usage or condition records
    what the data shows, and the next refresh would write it again.
    """

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="checklist_unticks"
    )
    item = models.ForeignKey(
        ChecklistItem, on_delete=models.CASCADE, related_name="unticks"
    )
    # The time and user of the tick that was taken back.
    ticked_at = models.DateTimeField()
    ticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    unticked_at = models.DateTimeField()
    unticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "unticked_at"]
        verbose_name = "account checklist untick"

    def __str__(self) -> str:
        return f"{self.account} unticked {self.item} at {self.unticked_at:%Y-%m-%d}"
