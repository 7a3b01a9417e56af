"""Chat formatting and answer-only labels: records (`domain.records`) become token ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from domain.records import QARecord, Record

IGNORE_INDEX = -100  # label value the cross-entropy skips (prompt and padding tokens)


# --- formatting ---------------------------------------------------------------------------


def start_ids(tokenizer) -> list[int]:
    """The begin-of-text token when the tokenizer puts one before plain text (Gemma's <bos>;
    SmolLM2 puts none). Text is encoded without special tokens everywhere (a chat template
    writes its own), so plain prompts and passages add it here. Found in use: without its
    <bos>, gemma3-270m answered "1 1 1 1" to every question."""
    first = tokenizer("", add_special_tokens=True)["input_ids"][:1]
    return first if first and first == [tokenizer.bos_token_id] else []


def format_prompt(tokenizer, question: str, *, chat: bool = True, system: str | None = None) -> str:
    """The text the model sees before the answer: its chat template when it has one."""
    if chat and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    start = tokenizer.bos_token if start_ids(tokenizer) else ""
    prefix = f"{system}\n\n" if system else ""
    return f"{start}{prefix}Question: {question}\nAnswer: "


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
    ids = (start_ids(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"])[
        :max_length
    ]
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
