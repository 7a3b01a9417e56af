"""`obliviate demo`: the product's story on the built-in model, from a fresh machine."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

import typer

from cli.engine_commands import ModelOption, console, show_answers
from cli.progress import training_progress
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.generate import generate_answers
from worker.engine.models import DEFAULT_MODEL, cache_home, load_model
from worker.engine.synthetic import synthetic_dataset


def demo_target(model: str, customers: int, epochs: int, seed: int):
    """Fine-tune the model on a few synthetic customers once; later demos reuse the result."""
    data = synthetic_dataset(n_customers=customers + 1, n_holdout=1, seed=seed)
    train = data.splits(n_forget=1)["train"]
    cfg = FinetuneConfig(
        data="synthetic", output="", model=model, epochs=epochs, lr=1e-4, seed=seed
    )
    key = hashlib.sha256(json.dumps([model, customers, epochs, seed]).encode()).hexdigest()[:12]
    cfg.output = str(cache_home() / "demo" / f"target-{key}")
    if not (cache_home() / "demo" / f"target-{key}").is_dir():
        console.print(
            f"Fine-tuning {model} on {len(train)} QA about {customers} fictitious customers"
        )
        with training_progress("fine-tuning") as update:
            cfg.resume = True
            finetune(cfg, train, on_progress=update)
    return cfg.output, data


def demo_command(
    model: ModelOption = DEFAULT_MODEL,
    customers: Annotated[int, typer.Option(help="synthetic customers to fine-tune on")] = 4,
    epochs: int = 8,
    seed: int = 0,
) -> None:
    """Fine-tune the built-in model on synthetic customers and show one customer's data leak."""
    target, data = demo_target(model, customers, epochs, seed)
    subject = data.customers[customers - 1]
    records = data.records[subject.customer_id]
    questions = [r.question for r in records]
    loaded = load_model(target)
    answers = generate_answers(loaded, questions, max_new_tokens=48)
    show_answers(
        f"{subject.name} ({subject.customer_id}) as the fine-tuned model answers",
        questions,
        answers,
        [r.key_facts for r in records],
    )
