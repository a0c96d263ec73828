"""IANA time zone names on contacts and accounts: checking and loading them."""

from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError


def load_time_zone(name: str) -> ZoneInfo:
    """Return the zone for an IANA name such as Europe/Paris.

    Raises ValueError naming the value when it is not a known zone. zoneinfo
    raises KeyError for an unknown name, ValueError for a path outside its
    database or a file that is not a zone, and OSError for a folder such as
    "America", so all three become one error here.
    """
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ValueError(
            f"Invalid time zone {name!r}: use an IANA name such as Europe/Paris, "
            "America/New_York or UTC."
        ) from None


def validate_time_zone_name(name: str) -> None:
    """Raise ValidationError for a non-blank name that is not an IANA time zone."""
    if not name:
        return
    try:
        load_time_zone(name)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_time_zone") from exc
