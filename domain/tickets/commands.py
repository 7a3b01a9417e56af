"""What a caller asks of the tickets service: filing, extending, deciding and re-running a
ticket. Pydantic models checked wherever they come from (the API's JSON, a page's form, the
embedded service); unknown fields are refused."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from domain.choices import ADAPTERS, METHODS
from domain.tickets.deadlines import LegalBasis
from domain.validation import PastDatetime, StrictBody


class TicketOptions(StrictBody):
    """Operators may choose the unlearning method and adapter for one ticket."""

    # Literal: an unknown name is a 422 naming the choices, not a job that fails in a worker.
    method: Literal[METHODS] | None = None  # type: ignore[valid-type]
    adapter: Literal[ADAPTERS] | None = None  # type: ignore[valid-type]


class TicketMetadata(StrictBody):
    model: str = Field(min_length=1, max_length=200, description="registered model name")
    subject_id: str = Field(
        min_length=1, max_length=500, description="the data subject; stored only as a keyed HMAC"
    )
    legal_basis: LegalBasis
    jurisdiction: str = Field(min_length=2, max_length=40, examples=["EU", "US-CA"])
    reason: str | None = Field(None, max_length=2000)
    requester: str = Field(min_length=1, max_length=200, description="who filed it, e.g. a DPO")
    options: TicketOptions | None = None


class TicketCreate(TicketMetadata):
    records: list[dict[str, Any]] = Field(
        min_length=1, description="QA records {question, answer, key_facts, ...} or {text}"
    )


class TicketExtend(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)
    notice_sent_at: PastDatetime


class Decision(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


class Rerun(StrictBody):
    """Unlearn a held ticket again, with what the operator changes; the data stays."""

    reason: str = Field(min_length=1, max_length=2000)
    steps: int | None = Field(None, ge=1, le=100_000, description="a larger step budget")
    method: Literal[METHODS] | None = None  # type: ignore[valid-type]
    adapter: Literal[ADAPTERS] | None = None  # type: ignore[valid-type]
