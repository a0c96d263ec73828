"""Helpers the condition tests share."""

from datetime import datetime

from conditions import EvaluationContext, compile_condition, parse_condition
from customers.models import Contact


def matching_contacts(text: str, as_of: datetime) -> set[int]:
    """Return the ids of the contacts a contact condition matches as of an instant."""
    condition = compile_condition(
        parse_condition(text, "contact"), EvaluationContext("contact", as_of)
    )
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))
