"""Statutory response deadlines: pure date arithmetic, no database.

GDPR Art. 12(3): one month from receipt, extendable by two further months with the reasons
notified to the subject. CCPA §1798.130: 45 days, extendable once by 45 days with notice.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class LegalBasis(StrEnum):
    GDPR_ART17 = "gdpr_art17"
    UK_GDPR_ART17 = "uk_gdpr_art17"
    CCPA = "ccpa"
    CONTRACT = "contract"  # a contractual or voluntary commitment, no statutory clock
    OTHER = "other"


@dataclass(frozen=True)
class Deadline:
    months: int = 0
    days: int = 0
    extension_months: int = 0
    extension_days: int = 0

    @property
    def extendable(self) -> bool:
        return bool(self.extension_months or self.extension_days)


DEADLINES = {
    LegalBasis.GDPR_ART17: Deadline(months=1, extension_months=2),
    LegalBasis.UK_GDPR_ART17: Deadline(months=1, extension_months=2),
    LegalBasis.CCPA: Deadline(days=45, extension_days=45),
    LegalBasis.CONTRACT: Deadline(days=30),
    LegalBasis.OTHER: Deadline(days=30),
}


def add_months(moment: datetime, months: int) -> datetime:
    """Same day of the month, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_at(basis: LegalBasis, received_at: datetime) -> datetime:
    rule = DEADLINES[basis]
    return add_months(received_at, rule.months) + timedelta(days=rule.days)


def extended_due_at(basis: LegalBasis, current_due_at: datetime) -> datetime:
    rule = DEADLINES[basis]
    if not rule.extendable:
        raise ValueError(f"the {basis.value} deadline cannot be extended")
    return add_months(current_due_at, rule.extension_months) + timedelta(days=rule.extension_days)
