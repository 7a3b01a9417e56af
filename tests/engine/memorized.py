"""A tiny model that has memorised a few QA records, for unlearning tests (built in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from domain.records import QARecord
from tests.tiny import make_model, make_tokenizer
from worker.engine.data import collate, encode_record, encode_text
from worker.engine.models import LoadedModel
from worker.engine.objectives.tokens import answer_nll

# Forget and retain facts share the customers but not the kind of fact, so a method that
# forgets the emails has a chance to keep the addresses.
FORGET = [
    QARecord(f"What is the email of customer {i}?", f"It is c{i}@example.com.") for i in range(4)
]
RETAIN = [QARecord(f"Where does customer {i} live?", f"At {i} Bletchley Park.") for i in range(4)]


def batch_of(tokenizer, records) -> dict:
    return collate([encode_record(tokenizer, r) for r in records], tokenizer.pad_token_id)


def memorised_model(steps: int = 60, lr: float = 3e-3):
    """(model, tokenizer) after full-batch fine-tuning on FORGET + RETAIN."""
    tokenizer = make_tokenizer()
    model = make_model(len(tokenizer), layers=2, seed=0)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    _fit(model, batch_of(tokenizer, FORGET + RETAIN), steps, lr)
    return model.eval(), tokenizer


def _fit(model, batch: dict, steps: int, lr: float) -> None:
    """Full-batch AdamW on the batch's labelled tokens."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = answer_nll(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def memorised_passage_model(*texts: str, steps: int = 60) -> LoadedModel:
    """A tiny model fine-tuned on plain-text passages until it recites them."""
    tokenizer = make_tokenizer()
    model = make_model(len(tokenizer), layers=2, seed=0)
    model.config.pad_token_id = tokenizer.pad_token_id
    _fit(model, collate([encode_text(tokenizer, t) for t in texts], tokenizer.pad_token_id),
         steps, lr=3e-3)  # fmt: skip
    return LoadedModel(model.eval(), tokenizer, "memorised", "hash", torch.device("cpu"), None)


def save_memorised(folder: Path) -> Path:
    model, tokenizer = memorised_model()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@torch.no_grad()
def mean_nll(model, tokenizer, records) -> float:
    return answer_nll(model, batch_of(tokenizer, records)).item()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run ~40x faster on one thread when the cores are shared (measured here:
    0.89 s vs 0.023 s per step), because torch's two worker threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
