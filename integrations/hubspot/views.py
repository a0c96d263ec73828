"""The endpoint that receives HubSpot's webhook requests."""

import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.hubspot.models import HubSpotConnection
from integrations.hubspot.services import queue_processing
from integrations.hubspot.webhooks import InvalidWebhook, check_signature, store_events

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Check the signature, store the events once each and queue their processing.

    The response is 200 once the events are committed, even when the broker
    cannot take the processing task: HubSpot would only send them again,
    and the hubspot-retry-webhook-events task applies stored events later.
    """
    connection = get_object_or_404(HubSpotConnection, pk=connection_id, is_active=True)
    try:
        check_signature(
            connection.app_secret,
            request.method or "POST",
            request.build_absolute_uri(),
            request.body,
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
            received = store_events(connection, request.body)
            transaction.on_commit(lambda: queue_processing(connection.pk))
    except InvalidWebhook as error:
        logger.info(
            "Rejected HubSpot webhook body for connection %s: %s", connection_id, error
        )
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"received": received})
