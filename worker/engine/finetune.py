"""Fine-tuning: make a model that knows a dataset (the target, or a retain model)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from domain.progress import Progress
from domain.records import Record, hash_records, load_records
from worker.engine.data import encode_record
from worker.engine.models import DEFAULT_MODEL
from worker.engine.objectives.tokens import answer_nll
from worker.engine.recipe import RunSpec, execute
from worker.engine.train import TrainConfig, batch_indices, make_batch


@dataclass
class FinetuneConfig:
    data: str
    output: str
    model: str = DEFAULT_MODEL
    adapter: str = "full"  # "full" or "lora"
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 8
    max_length: int = 256
    seed: int = 0
    limit: int | None = None  # train on the first N records only
    lora_rank: int = 16
    lora_alpha: int = 32
    merge: bool = True  # LoRA: save a plain merged model (a target model should be standalone)
    device: str | None = None
    precision: str | None = None
    overwrite: bool = False
    resume: bool = False


def finetune(
    cfg: FinetuneConfig,
    records: Sequence[Record] | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    records = list(records if records is not None else load_records(cfg.data))[: cfg.limit]
    steps_per_epoch = math.ceil(len(records) / cfg.batch_size)
    run = RunSpec(
        kind="finetune",
        model=cfg.model,
        output=Path(cfg.output),
        adapter=cfg.adapter,
        adapter_options={"rank": cfg.lora_rank, "alpha": cfg.lora_alpha}
        if cfg.adapter == "lora"
        else {},
        needs_reference=False,
        train=TrainConfig(
            steps=steps_per_epoch * cfg.epochs,
            lr=cfg.lr,
            schedule="linear",
            seed=cfg.seed,
            checkpoint_every=steps_per_epoch,  # one checkpoint per epoch
        ),
        config=asdict(cfg),
        data_hashes={"train": hash_records(records)},
        merge=cfg.adapter == "lora" and cfg.merge,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        device=cfg.device,
        precision=cfg.precision,
    )

    def make_step_loss(loaded, adapter):
        examples = [encode_record(loaded.tokenizer, r, cfg.max_length) for r in records]
        pad_id = loaded.tokenizer.pad_token_id

        def step_loss(step: int):
            indices = batch_indices(len(examples), cfg.batch_size, cfg.seed, step)
            batch = make_batch(examples, indices, pad_id, loaded.device)
            return answer_nll(loaded.model, batch), int(batch["attention_mask"].sum()), {}

        return step_loss

    return execute(run, make_step_loss, on_progress=on_progress, should_stop=should_stop)
