"""What every command the service accepts must hold: nothing the database cannot store.

Found by fuzzing (issue 18): a NUL character in any text, a number beyond the database's
integer range, NaN or Infinity, or a datetime without a time zone reached the database and
came back as a 500. The API refuses them with a 422 (api/validation.py adds its middleware).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, model_validator

DB_INT_MAX = 2**31 - 1  # PostgreSQL INTEGER: version numbers; offsets are capped alike


def unstorable(value: Any, where: str = "body") -> str | None:
    """Why `value` (a parsed JSON document) cannot be stored, naming where; None when it can."""
    if isinstance(value, str):
        return f"{where}: NUL characters are not allowed in text" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value} is not a number JSON can carry"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
        return f"{where}: {value} is beyond the 64-bit integer range"
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return f"{where}: NUL characters are not allowed in field names"
            if problem := unstorable(item, f"{where}.{key}"):
                return problem
    return None


class StrictBody(BaseModel):
    """Every request body: unknown fields refused, and nothing the database cannot hold."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if problem := unstorable(data):
            raise ValueError(problem)
        return data


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC):
        raise ValueError("must not lie in the future")
    return value


# A datetime with its time zone (naive ones compared with stored aware ones: a 500 before).
PastDatetime = Annotated[AwareDatetime, AfterValidator(_not_in_future)]
