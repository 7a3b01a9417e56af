"""Records, loaders, validation, chat formatting and answer-only labels.

Two record types: QA pairs (with the optional fields the evaluation metrics need) and plain
text. Every validation error names the source, the record index and the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from worker.engine.errors import UserError

IGNORE_INDEX = -100  # label value the cross-entropy skips (prompt and padding tokens)


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
_QA_OPTIONAL_STR = ("paraphrased_answer", "paraphrased_question")
_QA_LISTS = ("perturbed_answer", "key_facts")


def _text_field(row: dict, field: str, source: str, index: int, required: bool) -> str | None:
    value = row.get(field)
    if value is None:
        if required:
            raise DataError(source, "missing", index, field)
        return None
    if not isinstance(value, str):
        raise DataError(source, f"must be a string, got {type(value).__name__}", index, field)
    if required and not value.strip():
        raise DataError(source, "is empty", index, field)
    return value


def _list_field(row: dict, field: str, source: str, index: int) -> tuple[str, ...]:
    value = row.get(field)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DataError(
            source, f"must be a list of strings, got {type(value).__name__}", index, field
        )
    for item in value:
        if not isinstance(item, str):
            raise DataError(source, f"must hold only strings, found {item!r}", index, field)
    return tuple(value)


def parse_record(row: object, source: str, index: int) -> Record:
    if not isinstance(row, dict):
        raise DataError(source, f"must be a JSON object, got {type(row).__name__}", index)
    if "question" not in row and "answer" not in row and "text" in row:
        return TextRecord(_text_field(row, "text", source, index, required=True))
    if "question" not in row and "answer" not in row:
        raise DataError(source, "needs 'question' and 'answer' (QA) or 'text'", index, "question")
    return QARecord(
        question=_text_field(row, "question", source, index, required=True),
        answer=_text_field(row, "answer", source, index, required=True),
        **{f: _text_field(row, f, source, index, required=False) for f in _QA_OPTIONAL_STR},
        **{f: _list_field(row, f, source, index) for f in _QA_LISTS},
    )


def parse_records(rows: Sequence[object], source: str = "inline") -> list[Record]:
    """Validate raw rows (e.g. inline JSON from the API); an empty list is an error."""
    if not rows:
        raise DataError(source, "holds no records")
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


def load_qa_records(path: str | Path) -> list[QARecord]:
    records = load_records(path)
    for index, record in enumerate(records):
        if not isinstance(record, QARecord):
            raise DataError(str(path), "expected a QA record (question, answer)", index, "question")
    return records


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


# --- formatting ---------------------------------------------------------------------------


def format_prompt(tokenizer, question: str, *, chat: bool = True, system: str | None = None) -> str:
    """The text the model sees before the answer: its chat template when it has one."""
    if chat and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}Question: {question}\nAnswer: "


def end_token_ids(tokenizer) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


@dataclass
class Example:
    """One tokenized training example; labels are IGNORE_INDEX outside the answer."""

    input_ids: list[int]
    labels: list[int]


def encode_qa(tokenizer, question: str, answer: str, max_length: int = 256, **fmt) -> Example:
    prompt_ids = tokenizer(format_prompt(tokenizer, question, **fmt), add_special_tokens=False)[
        "input_ids"
    ]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + end_token_ids(tokenizer)
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    return Example(input_ids, labels)


def encode_text(tokenizer, text: str, max_length: int = 256) -> Example:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
    return Example(ids, list(ids))


def encode_record(tokenizer, record: Record, max_length: int = 256) -> Example:
    if isinstance(record, QARecord):
        return encode_qa(tokenizer, record.question, record.answer, max_length)
    return encode_text(tokenizer, record.text, max_length)


def _pad(seq: list[int], fill: int, width: int, left: bool) -> list[int]:
    padding = [fill] * (width - len(seq))
    return padding + seq if left else seq + padding


def collate(
    examples: Sequence[Example], pad_id: int, left_pad: bool = False
) -> dict[str, torch.Tensor]:
    """Pad to the longest example: input_ids, attention_mask, labels, each (B, T)."""
    width = max(len(e.input_ids) for e in examples)
    return {
        "input_ids": torch.tensor([_pad(e.input_ids, pad_id, width, left_pad) for e in examples]),
        "attention_mask": torch.tensor(
            [_pad([1] * len(e.input_ids), 0, width, left_pad) for e in examples]
        ),
        "labels": torch.tensor([_pad(e.labels, IGNORE_INDEX, width, left_pad) for e in examples]),
    }
