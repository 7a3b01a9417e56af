import os
from pathlib import Path

import pytest
import torch

from domain.records import QARecord
from tests.tiny import save_tiny


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Caches go to a temp dir; the hub is never contacted."""
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random 4-layer Llama (hidden 64) with a chat template, saved as an HF folder."""
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_plain_model_dir(tmp_path_factory) -> Path:
    """The same without a chat template: prompts fall back to `Question: ...\\nAnswer: `."""
    return save_tiny(tmp_path_factory.mktemp("tiny_plain") / "model", chat=False)


@pytest.fixture
def qa_records() -> list[QARecord]:
    return [
        QARecord(
            question=f"What is the email of customer {i}?",
            answer=f"The email of customer {i} is c{i}@example.com.",
            paraphrased_answer=f"Customer {i} can be reached at c{i}@example.com.",
            perturbed_answer=(f"c{i + 1}@example.com", f"x{i}@example.org", "none"),
            paraphrased_question=f"Which email does customer {i} use?",
            key_facts=(f"c{i}@example.com",),
        )
        for i in range(8)
    ]


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from threads, and on a shared 2-core machine a second thread made a
# tiny-model step ~40x slower (0.89 s vs 0.023 s, measured).
torch.set_num_threads(1)
