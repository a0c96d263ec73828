"""Generic inbound webhooks: usage events and property changes from tools like Zapier.

A request names an event source by its write key in a Bearer token and
carries a batch of items. Good items are kept and each bad one is listed
with its index and reason, as in Segment's batch API. docs/ingestion.md
("Generic webhooks") documents the JSON shape.
"""
