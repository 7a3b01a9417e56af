"""`obliviate demo`: the whole story on the built-in model, from a fresh machine.

1. fine-tune the built-in model on fictitious customers (cached after the first run),
2. file a deletion ticket for that customer with the embedded service (SQLite, in-process
   worker), watch it being assessed, unlearned (GRUN over IdkNLL, until the leak probes
   pass), evaluated, and published or held for review when the policy is not met
   (`cli/service_story.py`),
3. show the customer's answers before and after, the new model version and the audit trail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.engine_commands import ModelOption, console
from cli.progress import training_progress
from domain.choices import DEFAULT_MODEL

if TYPE_CHECKING:  # the engine loads when the demo runs, not when `obliviate` starts
    from worker.engine.synthetic import SyntheticData


def demo_target(model: str, customers: int, epochs: int, seed: int) -> tuple[str, SyntheticData]:
    """Fine-tune the model on a few synthetic customers once; later demos reuse the result."""
    from bench.customers import CustomersTarget

    target = CustomersTarget(model, customers, epochs, seed)
    if not target.folder.is_dir():
        console.print(
            f"[bold]1.[/bold] Fine-tuning {model} on {customers * 8} QA pairs about {customers} "
            "fictitious customers (once; cached for later demos)"
        )
        with training_progress("fine-tuning") as update:
            target.build(on_progress=update)
    return str(target.folder), target.data


def demo_ticket_data(data: SyntheticData, customers: int) -> tuple:
    """(subject, forget records, retain records, utility records) of the demo ticket. The retain
    term trains on every other customer but one; utility is measured on that one: answers the
    run never trained on."""
    subject = data.customers[customers - 1]
    others = [c for c in data.trained_ids if c != subject.customer_id]
    retain = [r for c in others[:-1] for r in data.records[c]]
    return subject, data.records[subject.customer_id], retain, data.records[others[-1]]


def demo_command(
    model: ModelOption = DEFAULT_MODEL,
    customers: Annotated[int, typer.Option(help="synthetic customers to fine-tune on")] = 4,
    epochs: int = 8,
    seed: int = 0,
) -> None:
    """The whole story: fine-tune, file a deletion ticket, unlearn, evaluate, publish, audit."""
    from cli.service_story import ticket_story

    target, data = demo_target(model, customers, epochs, seed)
    subject, records, retain, utility = demo_ticket_data(data, customers)
    console.print(
        f"\n[bold]2.[/bold] Legal files a GDPR Art. 17 ticket for {subject.name} "
        f"({subject.customer_id}): the model must forget their {len(records)} records"
    )
    ticket_story(target, subject.customer_id, records, retain, utility, console=console)
