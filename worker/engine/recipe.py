"""What every training run does around the loop: load, attach, train, save, record the cost.

`finetune` and `unlearn` differ only in how they compute a step's loss; both call `execute`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from domain.progress import Progress
from worker.engine.adapters import get_adapter
from worker.engine.artifacts import (
    MANIFEST,
    RUN_INFO,
    finalize_output,
    prepare_output,
    write_json,
)
from worker.engine.attention import training_attention
from worker.engine.models import LoadedModel, folder_hash, load_model
from worker.engine.precision import frozen_linears_cast
from worker.engine.train import TrainConfig, reset_peak_memory, seed_everything, train

StepLossFactory = Callable[[LoadedModel, object], Callable[[int], tuple]]


@dataclass
class RunSpec:
    """Everything `execute` needs besides the loss; built from FinetuneConfig / UnlearnConfig."""

    kind: str  # "finetune" or "unlearn"
    model: str
    output: Path
    adapter: str
    adapter_options: dict
    needs_reference: bool
    train: TrainConfig
    config: dict  # the caller's full config, recorded as given
    data_hashes: dict[str, str]
    merge: bool = False
    overwrite: bool = False
    resume: bool = False
    device: str | None = None
    precision: str | None = None
    # The stopping rule: `make_check(loaded)` -> `check(step)` for `train()` (None: no rule).
    make_check: Callable[[LoadedModel], Callable[[int], dict]] | None = None


def base_spec_for_manifest(spec: str) -> str:
    """Built-in names stay names; paths become absolute so the folder loads from anywhere."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _stats(store) -> dict | None:
    return store.stats() if store is not None else None


def execute(
    run: RunSpec,
    make_step_loss: StepLossFactory,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    loaded: LoadedModel | None = None,
) -> dict:
    """Train and write `run.output` (safetensors + obliviate.json + run.json); return run info."""
    staging = prepare_output(run.output, overwrite=run.overwrite, resume=run.resume)
    started = time.perf_counter()
    seed_everything(run.train.seed)
    loaded = loaded or load_model(run.model, device=run.device, precision=run.precision)
    reset_peak_memory(loaded.device)  # this run's peak, not the worker process's lifetime one
    adapter = get_adapter(run.adapter, **run.adapter_options)
    loaded.model = adapter.attach(loaded.model, needs_reference=run.needs_reference)
    step_loss = make_step_loss(loaded, adapter)
    with (
        frozen_linears_cast(loaded.model, loaded.autocast_dtype),
        training_attention(loaded.model, loaded.device),
    ):
        result = train(
            adapter.trainable(),
            step_loss,
            run.train,
            device=loaded.device,
            autocast=loaded.autocast,
            checkpoint_dir=staging / "checkpoint",
            should_stop=should_stop,
            on_progress=on_progress,
            check=run.make_check(loaded) if run.make_check else None,
        )
    adapter.save(staging, loaded.tokenizer, merge=run.merge)
    saved_as = "full" if run.merge else run.adapter
    write_json(
        staging / MANIFEST,
        {
            "adapter": saved_as,
            "base_model": base_spec_for_manifest(run.model),
            "base_hash": loaded.model_hash.split("+")[0],
            "kind": run.kind,
        },
    )
    info = {
        "kind": run.kind,
        "config": run.config,
        "model": {"spec": run.model, "hash": loaded.model_hash},
        "data": run.data_hashes,
        "adapter": run.adapter,
        "cost": {
            **{
                k: v
                for k, v in result.to_dict().items()
                if k not in ("losses", "checks", "stopped_at", "restored_from")
            },
            "total_wall_time_s": time.perf_counter() - started,
            "reference_values": _stats(getattr(step_loss, "reference_values", None)),
            "tokens_per_s": result.tokens / max(result.wall_time_s, 1e-9),
        },
        "losses": result.losses,
        # The stopping rule's curve: leak rate per probe every check_every steps.
        "stopping": {
            "checks": result.checks,
            "stopped_at": result.stopped_at,
            "restored_from": result.restored_from,
        },
        "environment": {
            "device": str(loaded.device),
            "autocast": str(loaded.autocast_dtype),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if (diagnostics := adapter.diagnostics()) is not None:
        info["diagnostics"] = diagnostics
    write_json(staging / RUN_INFO, info)
    output = finalize_output(staging, run.output)
    info["output"] = str(output)
    info["output_hash"] = folder_hash(output)
    return info
