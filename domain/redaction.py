"""Errors leave the worker, and operators' reasons enter the ticket, without the ticket's
personal data in their text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from domain.records import QARecord, Record, record_values

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
    return _substitute(text, values, "[redacted]")


def _substitute(text: str, values: set[str], placeholder: str) -> str:
    """`text` with each of `values` replaced, longest first (a value inside a longer one must
    not break the longer one's match)."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, placeholder)
    return text


_WORD = re.compile(r"[A-Z][\w'’-]*")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def names_in_questions(records: Sequence[Record]) -> set[str]:
    """Capitalised words after the first of each question: the names a question asks about
    ("What is the email of Ada Lovelace?" -> Ada, Lovelace). It over-masks ("London", "I")
    rather than miss a name, since nothing else says which words name the person."""
    names: set[str] = set()
    for record in records:
        if isinstance(record, QARecord):
            words = _WORD.findall(record.question)
            first = record.question.split(maxsplit=1)[0] if record.question.split() else ""
            names.update(w.rstrip("'’s") for w in words if not first.startswith(w))
    return {name for name in names if len(name) >= 2}


def mask_personal(text: str, records: Sequence[Record]) -> str:
    """`text` as a report may keep it after the data key is gone (issue 16): a record's answer
    or passage recited whole becomes [redacted]; its key facts [fact], e-mail addresses (a model
    may recite another person's) [email], the names its questions ask about [name], numbers #,
    and any other value of the records left [redacted]. What stays is the shape of an answer:
    a refusal, or a recital of facts."""
    recited = {
        v for r in records for v in record_values(r)
        if len(v) >= MIN_REDACTED and not _is_question(v, records) and not _is_fact(v, records)
    }  # fmt: skip
    text = _substitute(text, recited, "[redacted]")
    facts = {f for r in records if isinstance(r, QARecord) for f in r.key_facts if f}
    text = _EMAIL.sub("[email]", _substitute(text, facts, "[fact]"))
    for name in sorted(names_in_questions(records), key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", "[name]", text)
    return redact(_NUMBER.sub("#", text), records)


def _is_question(value: str, records: Sequence[Record]) -> bool:
    return any(isinstance(r, QARecord) and value in (r.question, r.paraphrased_question)
               for r in records)  # fmt: skip


def _is_fact(value: str, records: Sequence[Record]) -> bool:
    return any(isinstance(r, QARecord) and value in r.key_facts for r in records)


EXAMPLES = 3  # records whose masked answers, before and after, a ticket's evaluation keeps


def answer_examples(records: Sequence[Record], said: Sequence[str]) -> list[dict]:
    """The first EXAMPLES QA records' questions and the model's answers to them, masked."""
    qa = [r for r in records if isinstance(r, QARecord)][:EXAMPLES]
    return [
        {"record": i + 1, "question": mask_personal(r.question, records),
         "answer": mask_personal(answer, records)}
        for i, (r, answer) in enumerate(zip(qa, said, strict=False))
    ]  # fmt: skip


def paired_examples(before: Sequence[dict], after: Sequence[dict]) -> list[dict]:
    """Before and after answers side by side, per record."""
    answers_after = {e["record"]: e["answer"] for e in after}
    return [
        {"record": e["record"], "question": e["question"], "before": e["answer"],
         "after": answers_after.get(e["record"])}
        for e in before
    ]  # fmt: skip
