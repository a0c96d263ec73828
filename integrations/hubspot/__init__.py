"""Two-way sync with HubSpot's CRM: companies become accounts, contacts contacts.

The sync reads through the official hubspot-api-client, pointed at
HubSpot or, in the tests, at a local server that serves the same API.
Every write to the customer record goes through customers.services, so
the triggers that read CRM data see each change (docs/hubspot.md).
"""
