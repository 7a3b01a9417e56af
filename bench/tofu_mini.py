"""TOFU-mini (docs/engine.md): 800 QA of 40 TOFU authors, small enough for 2 CPU cores.

TOFU-mini = rows 0-399 (authors 1-20, the `retain_perturbed` utility set) + rows 3600-3999
(`forget10`; forget05 = 3800-3999, forget01 = 3960-3999) of TOFU's `full.json`.
Fixtures (the target model and one retain model per forget split, with their evaluations) are
built once under `cache_home()/bench/tofu-mini` and reused; each is an ordinary finetune
output folder, so an interrupted build resumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from domain.paths import cache_home
from domain.records import QARecord, load_qa_records
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.models import DEFAULT_MODEL, remember_hash

FORGET_ROWS = {"forget01": 40, "forget05": 200, "forget10": 400}  # the last N rows of full
UTILITY_ROWS = 400  # rows 0-399 = retain_perturbed
FORGET10_START = 3600


def default_tofu_dir() -> Path:
    """OBLIVIATE_TOFU_DIR, else ../shared/data/tofu beside the repository."""
    if env := os.environ.get("OBLIVIATE_TOFU_DIR"):
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tofu"


def tofu_mini_records(tofu_dir: Path, minus: str | None = None) -> list[QARecord]:
    """TOFU-mini, optionally without a forget split (the retain model's training set)."""
    full = load_qa_records(tofu_dir / "full.json")
    rows = full[:UTILITY_ROWS] + full[FORGET10_START:]
    if minus is not None:
        rows = rows[: len(rows) - FORGET_ROWS[minus]]
    return rows


@dataclass
class FixtureRecipe:
    """The measured recipe (docs/engine.md): fp32 weights + bf16 autocast, lr 1e-4, batch 8,
    6 epochs."""

    model: str = DEFAULT_MODEL
    epochs: int = 6
    lr: float = 1e-4
    batch_size: int = 8
    seed: int = 0


def fixtures_dir() -> Path:
    return cache_home() / "bench" / "tofu-mini"


def build_model_fixture(name: str, records, recipe: FixtureRecipe, on_progress=None) -> Path:
    """Fine-tune (or resume, or reuse) one fixture model; returns its folder."""
    output = fixtures_dir() / name
    if not (output / "run.json").is_file():
        cfg = FinetuneConfig(
            data=f"tofu-mini:{name}", output=str(output), model=recipe.model, epochs=recipe.epochs,
            lr=recipe.lr, batch_size=recipe.batch_size, seed=recipe.seed, resume=True,
        )  # fmt: skip
        finetune(cfg, records, on_progress=on_progress)
    # Every cell loads the target: hash its ~540 MB of weights once, not at each load.
    remember_hash(output)
    return output
