"""The hash chain: pure functions over an event's fields (no database here)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

GENESIS_HASH = "0" * 64


def _plain(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    raise TypeError(f"cannot put {type(value).__name__} into an audit event")


def canonical_json(fields: dict) -> str:
    """Sorted keys, no whitespace, UTC timestamps with microseconds: one text per event."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=_plain)


def event_fields(
    seq: int,
    occurred_at: datetime,
    actor: str,
    organisation_id: uuid.UUID | None,
    request_id: uuid.UUID | None,
    event_type: str,
    data: dict,
) -> dict:
    return {
        "seq": seq,
        "occurred_at": occurred_at,
        "actor": actor,
        "organisation_id": organisation_id,
        "request_id": request_id,
        "event_type": event_type,
        "data": data,
    }


def chain_hash(prev_hash: str, fields: dict) -> str:
    """sha256(prev_hash ‖ canonical JSON of the event)."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode()).hexdigest()
