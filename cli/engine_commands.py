"""Engine commands for operators and experiments: finetune, generate, data, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.progress import training_progress
from domain.choices import DEFAULT_MODEL
from domain.records import DataError, load_records

console = Console()


def user_errors() -> tuple[type[Exception], ...]:
    """What a command reports as the user's to fix. The engine loads (torch) only when a
    command that needs it fails, so `obliviate keys`, `migrate` or `serve` start without it."""
    from worker.engine.artifacts import OutputExistsError
    from worker.engine.models import ModelError

    return (DataError, ModelError, OutputExistsError, ValueError)


ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="built-in name, HF folder, .gguf file, or hub id")
]
PrecisionOption = Annotated[
    str, typer.Option(help="auto (bf16 autocast where the hardware has it), bf16, fp16, fp32")
]


def fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(2)


def finetune_command(
    data: Annotated[Path, typer.Option(help="QA or text records: JSON, JSONL, HF to_json")],
    output: Annotated[Path, typer.Option(help="folder to write (refused if it exists)")],
    model: ModelOption = DEFAULT_MODEL,
    adapter: Annotated[str, typer.Option(help="full or lora")] = "full",
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 8,
    max_length: int = 256,
    limit: Annotated[int | None, typer.Option(help="use only the first N records")] = None,
    seed: int = 0,
    lora_rank: int = 16,
    merge: Annotated[bool, typer.Option(help="LoRA: save a merged standalone model")] = True,
    device: str | None = None,
    precision: PrecisionOption = "auto",
    overwrite: bool = False,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run")] = False,
) -> None:
    """Fine-tune a model on a dataset (makes target and retain models)."""
    from worker.engine.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        data=str(data), output=str(output), model=model, adapter=adapter, epochs=epochs, lr=lr,
        batch_size=batch_size, max_length=max_length, seed=seed, limit=limit, lora_rank=lora_rank,
        merge=merge, device=device, precision=precision, overwrite=overwrite, resume=resume,
    )  # fmt: skip
    try:
        with training_progress("fine-tuning") as update:
            info = finetune(cfg, on_progress=update)
    except user_errors() as error:
        fail(error)
    cost = info["cost"]
    console.print(
        f"wrote {info['output']}: {cost['steps']} steps in {cost['wall_time_s']:.1f} s, "
        f"{cost['tokens_per_s']:.0f} tokens/s, peak memory {cost['peak_memory_mb']:.0f} MB"
    )


def generate_command(
    model: ModelOption = DEFAULT_MODEL,
    question: Annotated[list[str] | None, typer.Option("--question", "-q")] = None,
    data: Annotated[Path | None, typer.Option(help="answer every question of this file")] = None,
    max_new_tokens: int = 200,
    no_chat: Annotated[bool, typer.Option(help="plain `Question:/Answer:` prompt")] = False,
    precision: PrecisionOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
) -> None:
    """Answer questions with a model (base, fine-tuned, LoRA or GRUN folder)."""
    from worker.engine.generate import generate_answers
    from worker.engine.models import load_model

    try:
        questions = list(question or [])
        if data is not None:
            questions += [r.question for r in load_records(data) if hasattr(r, "question")]
        if not questions:
            raise ValueError("give --question or --data")
        loaded = load_model(model, precision=precision)
    except user_errors() as error:
        fail(error)
    answers = generate_answers(loaded, questions, max_new_tokens=max_new_tokens, chat=not no_chat)
    for q, a in zip(questions, answers, strict=True):
        if as_json:
            print(json.dumps({"question": q, "answer": a}, ensure_ascii=False))
        else:
            console.print(f"[bold]Q:[/bold] {q}\n[bold]A:[/bold] {a}\n")


def synthetic_command(
    output: Annotated[Path, typer.Option(help="folder for train/forget/retain/holdout .jsonl")],
    customers: int = 20,
    holdout: int = 5,
    forget: Annotated[int, typer.Option(help="customers in the forget split")] = 1,
    seed: int = 0,
) -> None:
    """Write the built-in synthetic customer dataset (fictitious people) as JSON Lines."""
    from worker.engine.synthetic import write_synthetic

    try:
        paths = write_synthetic(output, customers, holdout, forget, seed)
    except user_errors() as error:
        fail(error)
    for split, path in paths.items():
        console.print(f"{split}: {path}")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
    app.command("generate")(generate_command)
    app.command("synthetic")(synthetic_command)
    from cli.demo import demo_command

    app.command("demo")(demo_command)
