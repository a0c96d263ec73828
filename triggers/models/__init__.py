"""The triggers app's models, one module per concept, importable from here."""

from triggers.models.actions import (
    CrmWriteBack,
    CrmWriteBackStatus,
    CsmTask,
    CsmTaskStatus,
    WebhookDelivery,
    WebhookStatus,
)
from triggers.models.delivery import (
    WEEKDAY_NAMES,
    DeliveryRules,
    default_send_weekdays,
)
from triggers.models.journeys import (
    MAX_STEP_DELAY,
    JourneyStep,
    PendingStep,
    PendingStepStatus,
    PropertyObject,
    StepAction,
    TriggerMatch,
    WebhookEndpoint,
    generate_webhook_secret,
)
from triggers.models.programs import (
    VARIABLES_HELP,
    EmailTemplate,
    Occurrence,
    Recipients,
    SubjectType,
    Trigger,
)
from triggers.models.sweeps import (
    BacktestRun,
    BacktestStatus,
    BacktestStep,
    Firing,
    FiringOutcome,
    OutboxEmail,
    OutboxStatus,
    Sweep,
)

__all__ = [
    "MAX_STEP_DELAY",
    "VARIABLES_HELP",
    "WEEKDAY_NAMES",
    "BacktestRun",
    "BacktestStatus",
    "BacktestStep",
    "CrmWriteBack",
    "CrmWriteBackStatus",
    "CsmTask",
    "CsmTaskStatus",
    "DeliveryRules",
    "EmailTemplate",
    "Firing",
    "FiringOutcome",
    "JourneyStep",
    "Occurrence",
    "OutboxEmail",
    "OutboxStatus",
    "PendingStep",
    "PendingStepStatus",
    "PropertyObject",
    "Recipients",
    "StepAction",
    "SubjectType",
    "Sweep",
    "Trigger",
    "TriggerMatch",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookStatus",
    "default_send_weekdays",
    "generate_webhook_secret",
]
