"""A Segment-compatible HTTP API for identify, track, group and page calls.

Segment's libraries deliver to it unchanged when their host is set to this
site's /segment URL and their write key is that of an EventSource.
docs/ingestion.md describes the endpoints, limits, responses and how each
call maps to contacts, accounts and usage events.

- messages: validating one call and correcting its timestamp.
- bodies: authentication, gzip, size limits and JSON decoding.
- identities: identify and group, which create and link contacts.
- service: applying a list of calls in one transaction.
- views: the endpoints.
"""
