"""The ticket half of `obliviate demo`: file a deletion ticket for one customer against the
fine-tuned model, watch the service run it, and show the answers before and after, the audit
trail and the new version. Runs embedded (SQLite + in-process jobs), one folder per run.

    from cli.service_story import ticket_story
    ticket_story(target_spec, subject_id, forget_records, retain_records, utility_records)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from api.embedded import EmbeddedService
from domain.records import write_records

MODEL_NAME = "customers"
# Only the data: how to unlearn and when to publish are the defaults every model gets
# (worker/policy.py). Utility is measured on a customer the retain term never trained on.
DEMO_POLICY = """
[unlearning]
retain_data = "retain.jsonl"

[evaluation]
utility_data = "utility.jsonl"
"""


def _open_run(retain: list, utility: list, home: Path) -> EmbeddedService:
    run = home / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    service = EmbeddedService.open(
        database_url=f"sqlite:///{run / 'obliviate.db'}",
        artifacts_dir=run / "artifacts",
        policies_dir=run / "policies",
    )
    policy = service.policy_path(MODEL_NAME)
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(DEMO_POLICY)
    write_records(policy.parent / "retain.jsonl", retain)
    write_records(policy.parent / "utility.jsonl", utility)
    return service


def _watcher(console: Console):
    started = time.perf_counter()

    def show(ticket: dict) -> None:
        progress = ticket["progress"] or {}
        steps = f"  step {progress['step']}/{progress['total']}" if progress.get("total") else ""
        eta = f"  eta {progress['eta_s']:.0f} s" if progress.get("eta_s") else ""
        console.print(
            f"  {time.perf_counter() - started:6.1f} s  {ticket['state']:<11}{steps}{eta}"
        )

    return show


def _audit_table(events: list[dict]) -> Table:
    table = Table(title="Audit trail (hash-chained; ids, hashes and numbers only)")
    for column in ("seq", "event", "actor", "details", "hash"):
        table.add_column(column)
    hidden = {"from", "to", "job_id", "records_hash", "subject_hash"}
    for event in events:
        details = {
            k: v for k, v in event["data"].items() if k not in hidden and v not in (None, {})
        }
        text = json.dumps(details, default=str)
        table.add_row(
            str(event["seq"]),
            event["event_type"],
            event["actor"][:18],
            text[:70] + ("…" if len(text) > 70 else ""),
            event["hash"][:12],
        )
    return table


def _versions_table(versions: list[dict]) -> Table:
    table = Table(title=f"Model versions of {MODEL_NAME!r}")
    for column in ("version", "status", "method", "adapter", "tickets", "artifact hash"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v["number"]),
            v["status"],
            v["method"] or "-",
            v["adapter"] or "-",
            str(len(v["ticket_ids"])),
            (v["artifact_hash"] or "built-in")[:12],
        )
    return table


def ticket_story(
    target: str,
    subject_id: str,
    forget: list,
    retain: list,
    utility: list,
    *,
    console: Console | None = None,
    home: Path | None = None,
) -> dict:
    """Run the whole ticket story and print it. Returns {"ticket": the final ticket (state,
    assessment, evaluation with leak rates, utility, seconds per stage, cost), "events": its
    audit events, "versions": the model's versions, "run_folder": where it all lives}."""
    from domain.paths import cache_home
    from worker.engine.generate import generate_answers
    from worker.engine.models import load_model

    console = console or Console()
    service = _open_run(retain, utility, home or cache_home() / "demo" / "service")
    try:
        service.register_model(MODEL_NAME, target)
        ticket_id = service.submit(
            MODEL_NAME, forget, subject_id=subject_id, reason="demo: erasure request"
        )
        console.print(
            f"\nDeletion ticket {ticket_id} filed (GDPR Art. 17) for {len(forget)} records"
        )
        final = service.run_until_closed(ticket_id, on_update=_watcher(console))
        questions = [r.question for r in forget]
        made = service.ticket_version_spec(ticket_id)
        before = generate_answers(load_model(target), questions, max_new_tokens=48)
        after = generate_answers(load_model(made), questions, max_new_tokens=48) if made else []
        state = final["state"]
        table = Table(title="The customer's questions, before and after", show_lines=True)
        for column in ("question", "before (version 1)", f"after (new version, {state})"):
            table.add_column(column)
        for question, old, new in zip(
            questions, before, after or [""] * len(questions), strict=True
        ):
            table.add_row(question, old, new)
        console.print(table)
        events, versions = service.events(ticket_id), service.versions(MODEL_NAME)
        console.print(_audit_table(events))
        console.print(_versions_table(versions))
        evaluation = final.get("evaluation") or {}
        console.print(
            f"Ticket state: [bold]{final['state']}[/bold]; leak rates after: "
            f"{evaluation.get('leak_rate')}; utility ratio: "
            f"{(evaluation.get('utility') or {}).get('ratio')}"
        )
        console.print(f"Seconds per stage: {evaluation.get('stage_s')}")
        if state == "held":
            console.print(
                f"Held for review: {events[-1]['data'].get('violations')}; an operator "
                "approves (POST .../approve) or rejects it."
            )
        console.print(
            f"Audit chain verifies: {service.verify()['ok']}; data key destroyed: "
            f"{final['data_key_destroyed']}; run folder: {service.settings.artifacts_dir.parent}"
        )
        run_folder = service.settings.artifacts_dir.parent
        return {"ticket": final, "events": events, "versions": versions, "run_folder": run_folder}
    finally:
        service.close()
