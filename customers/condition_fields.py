"""The account and contact fields that conditions may compare.

Registering a column here lets a CSM write it in a condition, for example
`account.plan == "Pro"`, `contact.role == "admin"` or
`days_until(account.renewal_date) <= 90`. The properties fields hold the
custom CRM properties that the CRM sync writes, named by key:
`account.properties.industry == "fintech"`. Every field is read as its
current value: the customer record keeps no history of its columns.
"""

from conditions import Field, register_field
from customers.models import Plan

ACCOUNT_FIELDS = (
    Field("account.name", "name", "text", "Account name"),
    Field("account.industry", "industry", "text", "Industry"),
    Field("account.country", "country", "text", "Country code, such as FR"),
    Field("account.plan", "plan", "text", "Current plan", choices=tuple(Plan.values)),
    Field("account.seats", "seats", "number", "Seats"),
    Field("account.mrr", "mrr", "number", "Monthly recurring revenue"),
    Field("account.arr", "arr", "number", "Annual recurring revenue"),
    Field("account.is_trial", "is_trial", "boolean", "On a trial"),
    Field("account.signup_date", "signup_date", "date", "Signup date"),
    Field("account.kickoff_date", "kickoff_date", "date", "Kickoff date"),
    Field("account.renewal_date", "renewal_date", "date", "Renewal date"),
    Field("account.churned_on", "churned_on", "date", "Churn date"),
    Field("account.time_zone", "time_zone", "text", "Time zone"),
    Field("account.properties", "properties", "properties", "Custom CRM properties"),
)
CONTACT_FIELDS = (
    Field("contact.email", "email", "text", "Email address"),
    Field("contact.first_name", "first_name", "text", "First name"),
    Field("contact.last_name", "last_name", "text", "Last name"),
    Field("contact.role", "role", "text", "Role"),
    Field("contact.is_champion", "is_champion", "boolean", "Champion"),
    Field("contact.added_at", "added_at", "datetime", "Joined the account"),
    Field("contact.unsubscribed_at", "unsubscribed_at", "datetime", "Unsubscribed"),
    Field("contact.bounced_at", "bounced_at", "datetime", "Email bounced"),
    Field("contact.time_zone", "time_zone", "text", "Time zone"),
    Field("contact.properties", "properties", "properties", "Custom CRM properties"),
)

for field in ACCOUNT_FIELDS + CONTACT_FIELDS:
    register_field(field)
