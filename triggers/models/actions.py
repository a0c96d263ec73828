"""Rows that journey steps produce: CSM tasks, webhook calls and CRM write-backs."""

from django.conf import settings
from django.db import models

from triggers.models.journeys import JourneyStep, PropertyObject, WebhookEndpoint
from triggers.models.sweeps import Firing


class CsmTaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class CsmTask(models.Model):
    """A to-do for the CSM who owns an account, created by a journey step."""

    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="csm_tasks",
        help_text="The account the task is about.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The CSM who should do it: the account's owner when it was created.",
    )
    title = models.CharField(max_length=200, help_text="What to do.")
    details = models.TextField(
        blank=True, help_text="Why the task exists: the trigger and its subject."
    )
    due_on = models.DateField(help_text="The day the task should be done by.")
    status = models.CharField(
        max_length=10,
        choices=CsmTaskStatus.choices,
        default=CsmTaskStatus.OPEN,
        help_text="Open until the CSM marks it done.",
    )
    firing = models.ForeignKey(
        Firing,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The firing whose journey created the task.",
    )
    step = models.ForeignKey(
        JourneyStep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The journey step that created the task.",
    )
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the task was marked done."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was created."
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When this row was last changed."
    )

    class Meta:
        ordering = ["due_on", "id"]
        verbose_name = "CSM task"
        constraints = [
            # A journey step creates one task per firing.
            models.UniqueConstraint(
                fields=["firing", "step"],
                condition=models.Q(firing__isnull=False, step__isnull=False),
                name="one_csm_task_per_firing_step",
            ),
        ]
        indexes = [
            # The admin's "my open tasks" and "overdue" filters.
            models.Index(fields=["owner", "status", "due_on"]),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.account}, due {self.due_on})"


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One webhook call decided by a journey step, sent later from this outbox."""

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.PROTECT,
        related_name="deliveries",
        help_text="The endpoint the call goes to.",
    )
    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
        help_text="The firing the call describes.",
    )
    step = models.ForeignKey(
        JourneyStep,
        on_delete=models.PROTECT,
        related_name="webhook_deliveries",
        help_text="The journey step that decided the call.",
    )
    idempotency_key = models.CharField(
        max_length=64,
        unique=True,
        help_text=(
            "Sent as the Idempotency-Key header, the same on every attempt, so "
            "the receiver can drop a repeated call."
        ),
    )
    body = models.TextField(
        help_text="The JSON body, stored as sent so every attempt signs the same bytes."
    )
    status = models.CharField(
        max_length=10,
        choices=WebhookStatus.choices,
        default=WebhookStatus.PENDING,
        help_text=(
            "Pending: waiting to be sent or retried. Sending: claimed by a "
            "worker. Delivered: the endpoint answered 2xx. Failed: gave up "
            "after the last attempt."
        ),
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker claimed this call for sending."
    )
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="HTTP status of the last response, if any."
    )
    last_error = models.TextField(
        blank=True, help_text="The error of the last failed attempt."
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Earliest time of the next attempt; blank means at once.",
    )
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last claimed this call."
    )
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the endpoint accepted the call."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the journey step wrote this call."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One call per firing and step, even if the step's action runs twice.
            models.UniqueConstraint(
                fields=["firing", "step"], name="one_webhook_per_firing_step"
            ),
        ]
        indexes = [
            # The periodic job selects due pending rows and stuck sending rows.
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "claimed_at"]),
        ]

    def __str__(self) -> str:
        return f"Webhook {self.pk} to {self.endpoint} ({self.status})"


class CrmWriteBackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PUSHED = "pushed", "Pushed"
    FAILED = "failed", "Failed"


class CrmWriteBack(models.Model):
    """A property value that a journey set and the CRM integration has to push.

    The value is applied to the account's or contact's properties at once;
    this row remembers that the CRM does not have it yet.
    """

    object_type = models.CharField(
        max_length=10,
        choices=PropertyObject.choices,
        help_text="Whether the property belongs to the account or to a contact.",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The account, or the account of the contact.",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The contact, for contact properties; blank for account ones.",
    )
    property_name = models.CharField(
        max_length=100, help_text="The CRM property's internal name."
    )
    value = models.JSONField(null=True, help_text="The value to write, as JSON.")
    status = models.CharField(
        max_length=10,
        choices=CrmWriteBackStatus.choices,
        default=CrmWriteBackStatus.PENDING,
        help_text=(
            "Pending: the CRM integration has not pushed it yet. Pushed: the "
            "CRM accepted it. Failed: the CRM rejected it, see the last error."
        ),
    )
    last_error = models.TextField(
        blank=True, help_text="The CRM's error on the last failed push."
    )
    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The firing whose journey set the property.",
    )
    step = models.ForeignKey(
        JourneyStep,
        on_delete=models.PROTECT,
        related_name="crm_write_backs",
        help_text="The journey step that set the property.",
    )
    pushed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the CRM accepted the value."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the journey step set the property."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "CRM write-back"
        constraints = [
            # One row per firing, step and object, even if the step runs twice.
            models.UniqueConstraint(
                fields=["firing", "step", "account"],
                condition=models.Q(object_type="account"),
                name="one_account_write_back_per_firing_step",
            ),
            models.UniqueConstraint(
                fields=["firing", "step", "contact"],
                condition=models.Q(object_type="contact"),
                name="one_contact_write_back_per_firing_step",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(object_type="contact", contact__isnull=False)
                    | models.Q(object_type="account", contact__isnull=True)
                ),
                name="write_back_contact_matches_object_type",
            ),
        ]
        indexes = [
            # The CRM integration reads pending rows oldest first.
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        subject = self.contact or self.account
        return f"{self.property_name} on {subject} ({self.status})"
