"""`obliviate demo`: the whole story on the built-in model, from a fresh machine.

1. fine-tune the built-in model on fictitious customers (cached after the first run),
2. show that it recites one customer's personal data,
3. file a deletion ticket for that customer with the embedded service (SQLite, in-process
   worker), watch it being assessed, unlearned (GRUN over NPO), evaluated and published,
4. show the answers before and after, another customer's answers (utility), the new model
   version and the audit trail, and verify the hash chain.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.engine_commands import ModelOption, console, show_answers
from cli.progress import training_progress
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.generate import generate_answers
from worker.engine.models import DEFAULT_MODEL, cache_home, load_model
from worker.engine.synthetic import SyntheticData, synthetic_dataset

MODEL_NAME = "customer-assistant"
DEMO_POLICY = """\
# The demo's policy for {name}: GRUN over NPO with a retain term, published when no
# customer fact leaks on the direct questions and utility stays within 10%.
[unlearning]
method = "npo"
adapter = "grun"
retain_data = "retain.jsonl"

[evaluation]
max_new_tokens = 48

[publish]
max_leak_rate = {{ direct = 0.0 }}
min_utility_ratio = 0.9
"""


def demo_target(model: str, customers: int, epochs: int, seed: int) -> tuple[str, SyntheticData]:
    """Fine-tune the model on a few synthetic customers once; later demos reuse the result."""
    data = synthetic_dataset(n_customers=customers + 1, n_holdout=1, seed=seed)
    train = data.splits(n_forget=1)["train"]
    key = hashlib.sha256(json.dumps([model, customers, epochs, seed]).encode()).hexdigest()[:12]
    output = cache_home() / "demo" / f"target-{key}"
    if not output.is_dir():
        console.print(
            f"[bold]1.[/bold] Fine-tuning {model} on {len(train)} QA pairs about {customers} "
            "fictitious customers (once; cached for later demos)"
        )
        cfg = FinetuneConfig(data="synthetic", output=str(output), model=model, epochs=epochs,
                             lr=1e-4, seed=seed, resume=True)  # fmt: skip
        with training_progress("fine-tuning") as update:
            finetune(cfg, train, on_progress=update)
    return str(output), data


def ask(spec: str, records, title: str) -> list[str]:
    answers = generate_answers(load_model(spec), [r.question for r in records], max_new_tokens=48)
    show_answers(title, [r.question for r in records], answers, [r.key_facts for r in records])
    return answers


def open_demo_service(folder: Path, data: SyntheticData, subject_id: str):
    """A fresh embedded service (SQLite + in-process worker) with the demo's policy."""
    from api.embedded import EmbeddedService

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "policies").mkdir(parents=True)
    retain = [r for c in data.trained_ids if c != subject_id for r in data.records[c]]
    rows = "\n".join(json.dumps(r.to_dict()) for r in retain)
    (folder / "policies" / "retain.jsonl").write_text(rows + "\n")
    (folder / "policies" / f"{MODEL_NAME}.toml").write_text(DEMO_POLICY.format(name=MODEL_NAME))
    return EmbeddedService.open(
        database_url=f"sqlite:///{folder / 'service.db'}",
        artifacts_dir=folder / "artifacts",
        policies_dir=folder / "policies",
    )


def watch(ticket: dict) -> None:
    progress = ticket.get("progress") or {}
    detail = f" ({progress['stage']})" if progress.get("stage") else ""
    if progress.get("total"):
        detail += f" step {progress.get('step')}/{progress['total']}"
        if progress.get("eta_s") is not None:
            detail += f", ETA {progress['eta_s']:.0f} s"
    console.print(f"  {time.strftime('%H:%M:%S')}  {ticket['state']}{detail}")


def show_story_end(service, ticket_id, ticket: dict) -> None:
    console.print(f"\n[bold]Ticket {ticket_id}[/bold] is [bold]{ticket['state']}[/bold]")
    if ticket.get("evaluation"):
        console.print_json(json.dumps(ticket["evaluation"], default=str))
    console.print("\n[bold]Model versions[/bold]")
    for version in service.versions(MODEL_NAME):
        console.print(f"  {json.dumps(version, default=str)}")
    console.print("\n[bold]Audit trail of the ticket[/bold] (ids, hashes and numbers only)")
    for event in service.events(ticket_id):
        data = json.dumps(event["data"], default=str)
        console.print(f"  #{event['seq']} {event['occurred_at']}  {event['event_type']}  {data}")
    verdict = service.verify()
    console.print(
        f"\nAudit chain verified: ok={verdict['ok']}, {verdict['checked']} events checked"
    )


def demo_command(
    model: ModelOption = DEFAULT_MODEL,
    customers: Annotated[int, typer.Option(help="synthetic customers to fine-tune on")] = 4,
    epochs: int = 8,
    seed: int = 0,
) -> None:
    """The whole story: fine-tune, file a deletion ticket, unlearn, evaluate, publish, audit."""
    target, data = demo_target(model, customers, epochs, seed)
    subject = data.customers[customers - 1]
    bystander = data.customers[0]
    records = data.records[subject.customer_id]
    console.print(f"\n[bold]2.[/bold] The deployed model knows {subject.name}'s personal data:")
    ask(target, records, f"{subject.name} ({subject.customer_id}), before the ticket")

    folder = cache_home() / "demo" / "service"
    service = open_demo_service(folder, data, subject.customer_id)
    try:
        service.register_model(MODEL_NAME, target)
        console.print(
            f"\n[bold]3.[/bold] Legal files a GDPR Art. 17 ticket for {subject.customer_id}"
        )
        ticket_id = service.submit(
            MODEL_NAME, records, subject_id=subject.customer_id, reason="customer request"
        )
        started = time.perf_counter()
        ticket = service.run_until_closed(ticket_id, on_update=watch)
        console.print(f"  took {time.perf_counter() - started:.0f} s")
        serving = service.production_spec(MODEL_NAME)
        console.print("\n[bold]4.[/bold] The serving version now answers:")
        ask(serving, records, f"{subject.name}, after the ticket")
        ask(serving, data.records[bystander.customer_id][:4], f"{bystander.name} (not deleted)")
        show_story_end(service, ticket_id, ticket)
    finally:
        service.close()
