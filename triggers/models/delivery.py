"""Site-wide delivery rules for lifecycle email: the cap and quiet hours."""

from datetime import time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from customers.time_zones import validate_time_zone_name

# Sending days are stored as Python's date.weekday() numbers, 0 to 6.
WEEKDAY_NAMES = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)


def default_send_weekdays() -> list[int]:
    """Monday to Friday."""
    return [0, 1, 2, 3, 4]


class DeliveryRules(models.Model):
    """Site-wide limits on lifecycle email: a frequency cap and quiet hours.

    One row, edited in the admin. They apply to every trigger's email, not to
    sign-in links a contact asks for.
    """

    cap_emails = models.PositiveSmallIntegerField(
        default=3,
        help_text=(
            "At most this many lifecycle emails per contact in the cap window, "
            "across all triggers; 0 for no cap."
        ),
    )
    cap_window_days = models.PositiveSmallIntegerField(
        default=7, help_text="Length of the cap window in days."
    )
    max_deferral_days = models.PositiveSmallIntegerField(
        default=14,
        help_text=(
            "An email the cap or quiet hours hold back longer than this is "
            "dropped, with the reason recorded, instead of sent late."
        ),
    )
    send_from = models.TimeField(
        default=time(9, 0),
        help_text="Start of the sending window in the recipient's local time.",
    )
    send_until = models.TimeField(
        default=time(17, 0),
        help_text="End of the sending window in the recipient's local time.",
    )
    send_weekdays = models.JSONField(
        default=default_send_weekdays,
        help_text="Days email may go out, 0 for Monday to 6 for Sunday.",
    )
    default_time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text=(
            "IANA time zone for recipients whose contact and account have none."
        ),
    )
    quiet_hours_enabled = models.BooleanField(
        default=True,
        help_text="Hold email outside the sending window until it opens.",
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When these rules were last changed."
    )

    class Meta:
        verbose_name = "delivery rules"
        verbose_name_plural = "delivery rules"

    def __str__(self) -> str:
        return "Delivery rules"

    def clean(self) -> None:
        """Reject values that cannot work, naming each field; sort the sending days."""
        errors: dict[str, str] = {}
        weekdays_error = _weekdays_error(self.send_weekdays)
        if weekdays_error:
            errors["send_weekdays"] = weekdays_error
        else:
            self.send_weekdays = sorted(self.send_weekdays)

        # An end earlier than the start is a window that crosses midnight.
        if self.send_from == self.send_until:
            errors["send_until"] = (
                f"The sending window starts and ends at {self.send_from:%H:%M}: set "
                "a different end, earlier than the start for a window that "
                "crosses midnight, or turn quiet hours off to send at any time."
            )
        if self.cap_emails and not self.cap_window_days:
            errors["cap_window_days"] = (
                "A cap needs a window of at least 1 day; set the days, or set the "
                "cap to 0 for no cap."
            )
        try:
            if not self.default_time_zone:
                raise ValidationError("The default time zone is required, such as UTC.")
            validate_time_zone_name(self.default_time_zone)
        except ValidationError as exc:
            errors["default_time_zone"] = " ".join(exc.messages)

        if errors:
            raise ValidationError(errors)


def _weekdays_error(weekdays: Any) -> str:
    """Return why a send_weekdays value is invalid, or "" when it is valid."""
    if not isinstance(weekdays, list) or not weekdays:
        return (
            f"Invalid sending days {weekdays!r}: choose at least one day, as a list "
            "of numbers from 0 (Monday) to 6 (Sunday), for example [0, 1, 2, 3, 4]."
        )
    invalid = [day for day in weekdays if type(day) is not int or not 0 <= day <= 6]
    if invalid:
        return (
            f"Invalid sending days {weekdays!r}: {invalid!r} are not day numbers. "
            "Use numbers from 0 (Monday) to 6 (Sunday)."
        )
    repeated = sorted({day for day in weekdays if weekdays.count(day) > 1})
    if repeated:
        names = ", ".join(WEEKDAY_NAMES[day] for day in repeated)
        return (
            f"Invalid sending days {weekdays!r}: {names} listed more than once. "
            "List each day once."
        )
    return ""


# Journeys, the actions they take and re-entry. A trigger's own course and
# email run at the firing; its journey steps run after, in order, from
# PendingStep rows (triggers.journeys).
