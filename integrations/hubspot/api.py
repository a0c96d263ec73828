"""Calls to HubSpot through the official client, within the shared budget.

Every call takes a unit from the shared request budget first. A 429
response is retried after its Retry-After header plus jitter, or after
ten seconds without the header. A 5xx response is retried after a capped
exponential backoff, and so is a request that got no response (refused,
reset or timed out). Other errors raise HubSpotError at once.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from django.conf import settings
from hubspot import Client
from hubspot.crm.associations.v4.exceptions import (
    ApiException as AssociationApiException,
)
from hubspot.crm.companies.exceptions import ApiException as CompanyApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactApiException
from hubspot.crm.deals.exceptions import ApiException as DealApiException
from hubspot.crm.owners.exceptions import ApiException as OwnerApiException
from hubspot.crm.tickets.exceptions import ApiException as TicketApiException
from hubspot.crm.timeline.exceptions import ApiException as TimelineApiException

from integrations.hubspot.budget import shared_budget
from integrations.hubspot.models import HubSpotConnection

logger = logging.getLogger(__name__)

# Each API module of the client raises its own ApiException class.
API_EXCEPTIONS = (
    CompanyApiException,
    ContactApiException,
    DealApiException,
    AssociationApiException,
    OwnerApiException,
    TicketApiException,
    TimelineApiException,
)
# Seconds to wait after a 429 without a Retry-After header: HubSpot's
# burst limit is counted over ten seconds.
DEFAULT_RETRY_AFTER = 10
# Backoff after a 5xx response: 1, 2, 4 ... seconds, at most this many.
MAX_BACKOFF_SECONDS = 60

ResultT = TypeVar("ResultT")


class HubSpotError(RuntimeError):
    """A HubSpot request that failed for good, with its status and message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed: no response, 429 or 5xx."""
        return self.status is None or _retryable(self.status)


def build_client(connection: HubSpotConnection) -> Client:
    """Return the official client for the connection's token and host."""
    options: dict[str, Any] = {"access_token": connection.access_token}
    if connection.host:
        options["host"] = connection.host.rstrip("/")
    return Client.create(**options)


def call(
    connection: HubSpotConnection,
    request: Callable[[], ResultT],
    *,
    description: str,
    search: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> ResultT:
    """Run request, a call of the official client, with the budget and retries.

    description names the request in logs and errors, for example
    "search companies".
    """
    budget = shared_budget(str(connection.pk))
    attempts = settings.NUDGEPATH_HUBSPOT_MAX_ATTEMPTS
    for attempt in range(1, attempts + 1):
        if budget is not None:
            budget.acquire(search=search)
        try:
            return request()
        except API_EXCEPTIONS as error:
            status = error.status
            if attempt == attempts or not _retryable(status):
                raise HubSpotError(_describe(error, description), status) from None
            wait = _wait_seconds(error, attempt)
            logger.warning(
                "HubSpot %s returned %s; retry %s of %s in %.0f ms",
                description,
                status,
                attempt,
                attempts - 1,
                wait * 1000,
            )
            sleep(wait)
        except urllib3.exceptions.HTTPError as error:
            # No response at all: refused, reset or timed out. The client does
            # not wrap these, so they are retried here like a 5xx.
            message = f"HubSpot {description} failed with no response ({error})"[:2000]
            if attempt == attempts:
                raise HubSpotError(message) from None
            wait = _backoff_seconds(attempt)
            logger.warning(
                "HubSpot %s got no response; retry %s of %s in %.0f ms: %s",
                description,
                attempt,
                attempts - 1,
                wait * 1000,
                error,
            )
            sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retryable(status: int | None) -> bool:
    return status == 429 or (status is not None and status >= 500)


def _backoff_seconds(attempt: int) -> float:
    jitter = random.uniform(0, settings.NUDGEPATH_HUBSPOT_RETRY_JITTER_MS / 1000)
    return min(2 ** (attempt - 1), MAX_BACKOFF_SECONDS) + jitter


def _wait_seconds(error: Any, attempt: int) -> float:
    jitter = random.uniform(0, settings.NUDGEPATH_HUBSPOT_RETRY_JITTER_MS / 1000)
    if error.status != 429:
        return _backoff_seconds(attempt)
    headers = error.headers or {}
    retry_after = headers.get("Retry-After")
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        seconds = DEFAULT_RETRY_AFTER
    return seconds + jitter


def _describe(error: Any, description: str) -> str:
    body = error.body.decode() if isinstance(error.body, bytes) else error.body
    message = f"HubSpot {description} failed with {error.status} {error.reason}"
    return f"{message}: {body or ''}"[:2000]
