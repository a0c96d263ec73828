"""A registry of the content that apps map to lifecycle stages, for the Stage admin.

lifecycle's Stage admin lists the content mapped to each stage, but
lifecycle and courses do not import each other, and courses names stages
only by slug (Course.lifecycle_stages). An app that maps content to
stages registers a StageContentSource here from its AppConfig.ready(), as
it registers account page sections (customers.accounts_view), and
lifecycle reads the registry. customers itself maps nothing.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StageContentItem:
    """One piece of content mapped to a stage, such as a course."""

    title: str
    # The admin page of the item; blank when it has none.
    url: str = ""
    # A short qualifier shown after the title, such as "not published".
    note: str = ""


@dataclass(frozen=True)
class StageContentSource:
    """One kind of content and how to read its mapping to stages.

    load returns the items mapped to each stage slug, with a fixed number
    of queries whatever the number of stages or items. Items mapped to
    every stage go under EVERY_STAGE.
    """

    key: str
    label: str
    load: Callable[[], Mapping[str, list[StageContentItem]]]


# The key under which a source lists content meant for every stage.
EVERY_STAGE = "*"

_SOURCES: dict[str, StageContentSource] = {}


def register_stage_content(source: StageContentSource) -> StageContentSource:
    """Add a kind of stage content; apps call this from AppConfig.ready()."""
    existing = _SOURCES.get(source.key)
    if existing is not None and existing.load is not source.load:
        raise ValueError(f"stage content source {source.key!r} is registered twice")
    _SOURCES[source.key] = source
    return source


def registered_stage_content() -> list[StageContentSource]:
    """Return the sources by key, so the admin lists them in a stable order."""
    return [_SOURCES[key] for key in sorted(_SOURCES)]
