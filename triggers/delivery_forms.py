"""The admin form of the delivery rules."""

from django import forms

from triggers.models import WEEKDAY_NAMES, DeliveryRules

WEEKDAY_CHOICES = list(enumerate(WEEKDAY_NAMES))


class DeliveryRulesForm(forms.ModelForm):
    """Delivery rules with the sending days as one checkbox per weekday.

    The checks across fields run in DeliveryRules.clean(), which the form
    calls when it validates the instance.
    """

    send_weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        label="Sending days",
        help_text="Days on which email may go out, in the recipient's local time.",
    )

    class Meta:
        model = DeliveryRules
        fields = [
            "cap_emails",
            "cap_window_days",
            "max_deferral_days",
            "quiet_hours_enabled",
            "send_from",
            "send_until",
            "send_weekdays",
            "default_time_zone",
        ]
        help_texts = {
            "send_until": (
                "End of the sending window in the recipient's local time. An end "
                "earlier than the start closes the window the next day, so "
                "22:00 to 06:00 sends overnight."
            ),
        }
