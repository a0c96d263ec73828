"""IANA time zone names on contacts and accounts: checking and loading them."""

from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from django.core.exceptions import ValidationError

# Files in the host's zoneinfo folders that are not IANA names. On Debian and
# Ubuntu, localtime is a link to /etc/localtime, so its zone depends on how
# the machine is set up.
HOST_FILE_NAMES = frozenset({"localtime", "posixrules"})


@cache
def time_zone_names() -> frozenset[str]:
    """Return the IANA names that zoneinfo can load on this machine, with UTC.

    available_timezones() lists the files of the host's zoneinfo folders and
    of the tzdata package. It opens every file, so the result is kept for
    the life of the process.
    """
    return frozenset((available_timezones() - HOST_FILE_NAMES) | {"UTC"})


def load_time_zone(name: str) -> ZoneInfo:
    """Return the zone for an IANA name such as Europe/Paris.

    Raises ValueError naming the value when it is not a known zone. Only
    names in time_zone_names() are loaded, because ZoneInfo() also opens
    host files such as localtime. zoneinfo raises KeyError for a missing
    file, ValueError for a file that is not a zone and OSError for a
    folder, so all three become the same error here.
    """
    if name in time_zone_names():
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):
            pass
    raise ValueError(
        f"Invalid time zone {name!r}: use an IANA name such as Europe/Paris, "
        "America/New_York or UTC."
    )


def validate_time_zone_name(name: str) -> None:
    """Raise ValidationError for a non-blank name that is not an IANA time zone."""
    if not name:
        return
    try:
        load_time_zone(name)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_time_zone") from exc
