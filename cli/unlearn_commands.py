"""`obliviate unlearn`: make a model forget a set of records (method × adapter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.engine_commands import ModelOption, PrecisionOption, console, fail, user_errors
from cli.progress import training_progress
from domain.choices import DEFAULT_MODEL
from domain.choices import METHODS as METHOD_NAMES

METHODS = ", ".join(sorted(METHOD_NAMES))


def parse_adapter_options(pairs: list[str], lora_rank: int | None, lora_alpha: int | None):
    """`key=value` pairs (values read as JSON when they parse, else as strings)."""
    options: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--adapter-option {pair!r}: expected key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if lora_rank is not None:
        options["rank"] = lora_rank
    if lora_alpha is not None:
        options["alpha"] = lora_alpha
    return options


def unlearn_command(
    forget: Annotated[Path, typer.Option(help="records to forget: QA or text, JSON/JSONL")],
    output: Annotated[Path, typer.Option(help="folder to write (refused if it exists)")],
    retain: Annotated[Path | None, typer.Option(help="records to keep (the retain term)")] = None,
    model: ModelOption = DEFAULT_MODEL,
    method: Annotated[str, typer.Option(help=f"objective: {METHODS}")] = "npo",
    adapter: Annotated[str, typer.Option(help="full, lora or grun")] = "full",
    epochs: Annotated[int, typer.Option(help="passes over the forget set")] = 5,
    steps: Annotated[int | None, typer.Option(help="number of steps (overrides epochs)")] = None,
    lr: Annotated[
        float | None, typer.Option(help="default: the adapter's (full 1e-5, lora 1e-4, grun 4e-3)")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="forget (and retain) records per step")] = 4,
    max_length: int = 256,
    gamma: Annotated[float, typer.Option(help="weight of the forget term")] = 1.0,
    alpha: Annotated[float, typer.Option(help="weight of the retain term (0: off)")] = 1.0,
    beta: Annotated[
        float | None, typer.Option(help="NPO/IdkDPO (default 0.1), SimNPO (default 4.5)")
    ] = None,
    delta: Annotated[float, typer.Option(help="SimNPO margin")] = 0.0,
    retain_loss: Annotated[str, typer.Option(help="nll or kl (to the original model)")] = "nll",
    refusals: Annotated[
        Path | None, typer.Option(help="idk/idkdpo: refusal answers, one a line")
    ] = None,
    rmu_layer: Annotated[int | None, typer.Option(help="RMU: decoder block to steer")] = None,
    rmu_steering: Annotated[
        float | None, typer.Option(help="RMU: steering coefficient (default: 5 x hidden norm)")
    ] = None,
    lora_rank: int | None = None,
    lora_alpha: int | None = None,
    adapter_option: Annotated[
        list[str] | None, typer.Option(help="key=value passed to the adapter (repeatable)")
    ] = None,
    seed: int = 0,
    merge: Annotated[bool, typer.Option(help="LoRA: save a merged standalone model")] = False,
    device: str | None = None,
    precision: PrecisionOption = "auto",
    overwrite: bool = False,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run")] = False,
) -> None:
    """Unlearn the forget records from a model; writes the model and run.json with the cost."""
    from worker.engine.objectives import LossSettings
    from worker.engine.unlearn import UnlearnConfig, unlearn

    try:
        cfg = UnlearnConfig(
            output=str(output), forget=str(forget), retain=str(retain) if retain else None,
            model=model, method=method, adapter=adapter,
            adapter_options=parse_adapter_options(adapter_option or [], lora_rank, lora_alpha),
            epochs=epochs, steps=steps, lr=lr, batch_size=batch_size, max_length=max_length,
            seed=seed,
            loss=LossSettings(gamma=gamma, alpha=alpha, beta=beta, delta=delta,
                              retain_loss=retain_loss, rmu_layer=rmu_layer,
                              rmu_steering=rmu_steering),
            refusals=str(refusals) if refusals else None, merge=merge, device=device,
            precision=precision, overwrite=overwrite, resume=resume,
        )  # fmt: skip
        with training_progress(f"unlearning ({method}, {adapter})") as update:
            info = unlearn(cfg, on_progress=update)
    except user_errors() as error:
        fail(error)
    cost = info["cost"]
    console.print(
        f"wrote {info['output']}: {cost['steps']} steps in {cost['wall_time_s']:.1f} s, "
        f"final loss {info['losses'][-1]:.4f}, {cost['trainable_parameters']:,} trainable "
        f"parameters, peak memory {cost['peak_memory_mb']:.0f} MB"
    )


def register(app: typer.Typer) -> None:
    app.command("unlearn")(unlearn_command)
