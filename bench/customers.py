"""The built-in model fine-tuned on synthetic customers: the target of `obliviate demo` and of
the ticket benchmark, built once per recipe and cached under the cache home."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domain.paths import cache_home
from domain.progress import Progress
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.synthetic import SYNTHETIC_VERSION, SyntheticData, synthetic_dataset


@dataclass(frozen=True)
class CustomersTarget:
    model: str
    customers: int  # fine-tuned on; one more is generated and held out
    epochs: int
    seed: int = 0

    @property
    def data(self) -> SyntheticData:
        return synthetic_dataset(n_customers=self.customers + 1, n_holdout=1, seed=self.seed)

    @property
    def folder(self) -> Path:
        recipe = [self.model, self.customers, self.epochs, self.seed, SYNTHETIC_VERSION]
        key = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]
        return cache_home() / "demo" / f"target-{key}"

    def build(self, on_progress: Callable[[Progress], None] | None = None) -> Path:
        """Fine-tune (8 QA per customer, lr 1e-4) unless the folder exists; return it."""
        if not self.folder.is_dir():
            train = self.data.splits(n_forget=1)["train"]
            cfg = FinetuneConfig(
                data="synthetic", output=str(self.folder), model=self.model,
                epochs=self.epochs, lr=1e-4, seed=self.seed, resume=True,
            )  # fmt: skip
            finetune(cfg, train, on_progress=on_progress)
        return self.folder
