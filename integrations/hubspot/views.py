"""The endpoint that receives HubSpot's webhook requests."""

import logging

from celery import current_app
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.hubspot.models import HubSpotConnection
from integrations.hubspot.services import queue_processing
from integrations.hubspot.webhooks import InvalidWebhook, check_signature, store_events

logger = logging.getLogger(__name__)


class ProcessAfterResponse(JsonResponse):
    """A response that applies the connection's due events once it is sent.

    With eager tasks (no broker, as in the embedded demo) the processing
    task runs in the calling process and may wait for HubSpot and its
    retries for a minute. WSGI servers call close() after the last byte of
    the response is written, so HubSpot receives the response first. The view
    returns this response only after the transaction that stored the
    events has ended without an error, and processing claims whatever
    events are due, so it needs no hook on the commit.
    """

    def __init__(self, data: dict[str, object], connection_id: int) -> None:
        super().__init__(data)
        self.connection_id = connection_id

    def close(self) -> None:
        try:
            queue_processing(self.connection_id)
        except Exception:
            # The events stay stored and due, and the next webhook or the
            # retry task applies them; the response is already sent.
            logger.exception(
                "Applying HubSpot webhook events of connection %s failed",
                self.connection_id,
            )
        finally:
            super().close()


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Check the signature, store the events once each and queue their processing.

    The response is 200 once the events are committed, even when the broker
    cannot take the processing task: HubSpot would only send them again,
    and the hubspot-retry-webhook-events task applies stored events later.
    """
    connection = HubSpotConnection.objects.filter(
        pk=connection_id, is_active=True
    ).first()
    if connection is None:
        return JsonResponse(
            {"error": f"no active HubSpot connection has id {connection_id}"},
            status=404,
        )
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        logger.warning(
            "Rejected HubSpot webhook for connection %s: body over %s bytes",
            connection_id,
            limit,
        )
        return JsonResponse(
            {
                "error": f"body is larger than the limit of {limit} bytes "
                "(DATA_UPLOAD_MAX_MEMORY_SIZE)"
            },
            status=413,
        )
    try:
        check_signature(
            connection.app_secret,
            request.method or "POST",
            request.build_absolute_uri(),
            body,
            request.headers.get("X-HubSpot-Request-Timestamp"),
            request.headers.get("X-HubSpot-Signature-v3"),
        )
    except InvalidWebhook as error:
        logger.warning(
            "Rejected HubSpot webhook for connection %s: %s", connection_id, error
        )
        return JsonResponse({"error": str(error)}, status=401)
    try:
        with transaction.atomic():
            received = store_events(connection, body)
            response = _accepted(received, connection.pk)
    except InvalidWebhook as error:
        logger.info(
            "Rejected HubSpot webhook body for connection %s: %s", connection_id, error
        )
        return JsonResponse({"error": str(error)}, status=400)
    return response


def _accepted(received: int, connection_id: int) -> JsonResponse:
    """Return the 200 response and arrange the processing of the events."""
    if current_app.conf.task_always_eager:
        return ProcessAfterResponse({"received": received}, connection_id)
    transaction.on_commit(lambda: queue_processing(connection_id))
    return JsonResponse({"received": received})
