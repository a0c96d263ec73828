"""The dashboard's filters (period, plan, lifecycle stage) as ORM conditions.

Every report takes one ``Scope``, so the page, the CSV downloads and the
scheduled reports narrow their data the same way.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q

from customers.services import utc_day_start


@dataclass(frozen=True)
class Scope:
    """The accounts and the period that a report covers.

    ``start`` and ``end`` are UTC days, both included; either may be None for
    an open end. ``plan`` is an account plan, ``stage`` a lifecycle stage
    slug and ``segment`` an account industry, the segment field of the
    customer record. Blank means every plan, stage or segment. An account
    with no current stage matches only when no stage is chosen.
    """

    start: date | None = None
    end: date | None = None
    plan: str = ""
    stage: str = ""
    segment: str = ""

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(
                f"period start {self.start} is after its end {self.end}; "
                "swap the dates or leave one of them blank"
            )

    @property
    def has_period(self) -> bool:
        return self.start is not None or self.end is not None

    def period_bounds(self) -> tuple[datetime | None, datetime | None]:
        """Return the period as [start, end) instants in UTC."""
        start = utc_day_start(self.start) if self.start else None
        end = utc_day_start(self.end + timedelta(days=1)) if self.end else None
        return start, end

    def accounts(self, prefix: str = "") -> Q:
        """Return a condition on accounts reached through ``prefix``.

        ``prefix`` is the lookup path to the account, such as
        ``"contact__account__"``, or blank for a query over accounts.
        """
        condition = Q()
        if self.plan:
            condition &= Q(**{f"{prefix}plan": self.plan})
        if self.stage:
            condition &= Q(**{f"{prefix}lifecycle__stage__slug": self.stage})
        if self.segment:
            condition &= Q(**{f"{prefix}industry": self.segment})
        return condition

    def in_period(self, field: str) -> Q:
        """Return a condition that the instant ``field`` falls in the period."""
        start, end = self.period_bounds()
        condition = Q()
        if start is not None:
            condition &= Q(**{f"{field}__gte": start})
        if end is not None:
            condition &= Q(**{f"{field}__lt": end})
        return condition

    def enrollments(self, prefix: str = "") -> Q:
        """Return a condition on enrollments made in the period by matching accounts.

        ``prefix`` is the lookup path to the enrollment, such as
        ``"enrollments__"`` from a course.
        """
        return self.accounts(f"{prefix}contact__account__") & self.in_period(
            f"{prefix}enrolled_at"
        )


EVERYTHING = Scope()
