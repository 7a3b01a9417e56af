"""Errors leave the worker, and operators' reasons enter the ticket, without the ticket's
personal data in their text."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from domain.records import Record, record_values

MIN_REDACTED = 4  # shorter values ("Ada", "42") would blank ordinary words of a message


@contextmanager
def redacting(records: Sequence[Record]) -> Iterator[None]:
    """An engine error leaves with the ticket's own values taken out of its message (and of
    the errors it chains): a tokenizer or data error may quote the text it failed on, and the
    message is logged and stored on the job (issue 18: personal data stays in the encrypted
    records)."""
    try:
        yield
    except Exception as error:
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            text = str(current)
            if (clean := redact(text, records)) != text:
                current.args = (clean,)
            current = current.__cause__ or current.__context__
        raise


def redact(text: str, records: Sequence[Record]) -> str:
    """`text` with every value of `records` (longest first) replaced by "[redacted]"."""
    values = {v for r in records for v in record_values(r) if len(v) >= MIN_REDACTED}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text
