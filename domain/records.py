"""Records: the two kinds a ticket or a dataset holds, their validation, loading and content
hash. Free of torch: the API validates a ticket's records with this module alone.

QA pairs carry the optional fields the evaluation metrics need; plain text is a passage. Every
validation error names the source, the record index and the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from domain.errors import UserError
from domain.messages import error_text


class DataError(UserError):
    """Bad input data; str() reads `source: record N: field 'x': problem`."""

    def __init__(
        self, source: str, problem: str, index: int | None = None, field: str | None = None
    ):
        self.source, self.index, self.field, self.problem = source, index, field, problem
        where = [source]
        if index is not None:
            where.append(f"record {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join([*where, problem]))


class RecordError(DataError):
    """A problem in a ticket's records, named by its code in domain/messages.py: the web pages
    say it in the reader's language (the engine's other data errors are for engineers)."""

    def __init__(self, source: str, code: str, index: int | None = None,
                 field: str | None = None, **params):  # fmt: skip
        super().__init__(source, error_text("en", code, params), index, field)
        self.code, self.params = code, params


@dataclass(frozen=True)
class QARecord:
    question: str
    answer: str
    paraphrased_answer: str | None = None
    perturbed_answer: tuple[str, ...] = ()
    paraphrased_question: str | None = None
    # Spans whose appearance in an answer means the fact leaked (a name, a date, an email...).
    key_facts: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        row = asdict(self)
        row["perturbed_answer"] = list(self.perturbed_answer)
        row["key_facts"] = list(self.key_facts)
        return {k: v for k, v in row.items() if v not in (None, [], ())}


@dataclass(frozen=True)
class TextRecord:
    text: str

    def to_dict(self) -> dict:
        return {"text": self.text}


Record = QARecord | TextRecord


def record_values(record: Record) -> list[str]:
    """Every text a record holds: what must never appear outside its encrypted copy."""
    if isinstance(record, TextRecord):
        return [record.text]
    optional = [record.paraphrased_answer, record.paraphrased_question]
    texts = [record.question, record.answer, *optional, *record.perturbed_answer]
    return [t for t in [*texts, *record.key_facts] if t]


def _optional_text(row: dict, field: str, source: str, index: int) -> str | None:
    value = row.get(field)
    if value is not None and not isinstance(value, str):
        raise RecordError(source, "not_string", index, field, got=type(value).__name__)
    return value


def _required_text(row: dict, field: str, source: str, index: int) -> str:
    value = _optional_text(row, field, source, index)
    if value is None:
        raise RecordError(source, "missing", index, field)
    if not value.strip():
        raise RecordError(source, "empty", index, field)
    return value


def _list_field(row: dict, field: str, source: str, index: int) -> tuple[str, ...]:
    value = row.get(field)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecordError(source, "not_list", index, field, got=type(value).__name__)
    for item in value:
        if not isinstance(item, str):
            raise RecordError(source, "not_strings", index, field, got=type(item).__name__)
    return tuple(value)


def parse_record(row: object, source: str, index: int) -> Record:
    if not isinstance(row, dict):
        raise RecordError(source, "not_object", index, got=type(row).__name__)
    if "question" not in row and "answer" not in row and "text" in row:
        return TextRecord(_required_text(row, "text", source, index))
    if "question" not in row and "answer" not in row:
        raise RecordError(source, "not_qa_or_text", index, "question")
    return QARecord(
        question=_required_text(row, "question", source, index),
        answer=_required_text(row, "answer", source, index),
        paraphrased_answer=_optional_text(row, "paraphrased_answer", source, index),
        perturbed_answer=_list_field(row, "perturbed_answer", source, index),
        paraphrased_question=_optional_text(row, "paraphrased_question", source, index),
        key_facts=_list_field(row, "key_facts", source, index),
    )


def parse_records(rows: Sequence[object], source: str = "inline") -> list[Record]:
    """Validate raw rows (e.g. inline JSON from the API); an empty list is an error."""
    if not rows:
        raise RecordError(source, "no_records")
    return [parse_record(row, source, index) for index, row in enumerate(rows)]


def _read_rows(path: Path) -> list[object]:
    """JSON array, JSON Lines, or the Hugging Face `to_json` batch layout (one array per line)."""
    text = path.read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
        return whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        pass
    rows: list[object] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                str(path), f"line {line_number} is not valid JSON ({error.msg})"
            ) from None
        rows.extend(item if isinstance(item, list) else [item])
    return rows


def load_records(path: str | Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found")
    return parse_records(_read_rows(path), str(path))


def write_records(path: Path, records: Iterable[Record]) -> None:
    """JSON Lines that `load_records` reads back: one record's dict per line."""
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")


def load_qa_records(path: str | Path) -> list[QARecord]:
    qa = []
    for index, record in enumerate(load_records(path)):
        if not isinstance(record, QARecord):
            raise DataError(str(path), "expected a QA record (question, answer)", index, "question")
        qa.append(record)
    return qa


def load_refusals(path: str | Path) -> list[str]:
    """A plain list of refusal answers, one per line (TOFU's idontknow.jsonl is this format)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    refusals = [line for line in lines if line]
    if not refusals:
        raise DataError(str(path), "holds no refusal lines")
    return refusals


def hash_records(records: Iterable[Record]) -> str:
    """Content hash of a dataset, independent of the file format it came in."""
    payload = json.dumps([r.to_dict() for r in records], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
