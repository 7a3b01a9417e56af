"""`obliviate bench tickets`: the product's own case, measured ticket by ticket (issue 19).

One target: the built-in model fine-tuned on 20 synthetic customers (cached). Their roles are
fixed for every ticket:
- retain (the policy's `retain_data`): customers 0-5, what the retain term trains on;
- utility (the policy's `utility_data`): customers 6-7, the pipeline's utility ratio;
- subjects: customers 8, 10, 12, ... : one deletion ticket each, per seed;
- neighbours: customers 9, 11, 13, ...: never trained on by any run and never a subject, so
  their recall after a ticket shows whether the gate keys on the person or on the question.
Each ticket runs through the real pipeline (embedded service: assess → unlearn → evaluate →
publish or hold) with the default policy, only the data files and the seed named. Then the
benchmark asks the ticket's model version (published or held) what the pipeline does not:
the subject's questions in the wordings no run saw, the neighbours' questions, and general
questions, each against the target's answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from api.embedded import EmbeddedService
from bench import RESULTS
from bench.customers import CustomersTarget
from domain.paths import cache_home
from domain.records import QARecord, write_records
from worker.engine.eval.fluency import fluency
from worker.engine.eval.general import GENERAL_QUESTIONS
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel, folder_hash, load_model
from worker.engine.stopping import ask_and_judge
from worker.engine.synthetic import SyntheticData, unseen_questions

MODEL_NAME = "customers"
MAX_NEW_TOKENS = 48
POLICY = """
[unlearning]
retain_data = "retain.jsonl"
seed = {seed}

[evaluation]
utility_data = "utility.jsonl"
"""


@dataclass(frozen=True)
class TicketBench:
    subjects: int = 5
    seeds: int = 3
    model: str = "smollm2-135m"
    customers: int = 20
    epochs: int = 16

    def target(self) -> CustomersTarget:
        return CustomersTarget(self.model, self.customers, self.epochs)

    def roles(self, data: SyntheticData) -> dict[str, list[str]]:
        ids = data.trained_ids
        if self.subjects > (len(ids) - 8) // 2:
            raise ValueError(f"{len(ids)} customers leave room for {(len(ids) - 8) // 2} subjects")
        return {
            "retain": ids[:6],
            "utility": ids[6:8],
            "subjects": ids[8::2][: self.subjects],
            "neighbours": ids[9::2],
        }


def _rows(records: Sequence[QARecord]) -> list[tuple[str, QARecord]]:
    return [(r.question, r) for r in records]


def leak_rate(loaded: LoadedModel, rows) -> float:
    return fmean(ask_and_judge(loaded, rows, MAX_NEW_TOKENS)[0]) if rows else 0.0


def unseen_rows(data: SyntheticData, subject: str) -> list[tuple[str, QARecord]]:
    customer = next(c for c in data.customers if c.customer_id == subject)
    return [(q, r) for r in data.records[subject] for q in unseen_questions(customer, r)]


def subject_answers(loaded: LoadedModel, data: SyntheticData, subject: str) -> dict:
    """The subject's questions as filed and in the wordings no run saw."""
    leaked, said = ask_and_judge(loaded, _rows(data.records[subject]), MAX_NEW_TOKENS)
    return {
        "direct": fmean(leaked),
        "fluency": fmean(fluency(a) for a in said),
        "unseen": leak_rate(loaded, unseen_rows(data, subject)),
    }


def others_answers(loaded: LoadedModel, data: SyntheticData, roles: dict) -> dict:
    """What must not change: the neighbours' facts and the answers to general questions."""
    return {
        "neighbours_recall": leak_rate(loaded, _rows(data.qa(roles["neighbours"]))),
        "general": generate_answers(loaded, list(GENERAL_QUESTIONS), max_new_tokens=32),
    }


def run_embedded_ticket(run: Path, model: str, spec: str, policy: str, files: dict, records,
                        subject_id: str) -> dict:  # fmt: skip
    """One ticket through a fresh embedded service in `run`: `model` registered from `spec`,
    its policy text and data `files` ({name: records}) beside it. Returns the final ticket and
    its version's spec."""
    service = EmbeddedService.open(
        database_url=f"sqlite:///{run / 'obliviate.db'}",
        artifacts_dir=run / "artifacts",
        policies_dir=run / "policies",
    )
    try:
        path = service.policy_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(policy)
        for name, rows in files.items():
            write_records(path.parent / name, rows)
        service.register_model(model, spec)
        ticket_id = service.submit(model, records, subject_id=subject_id, reason="benchmark ticket")
        final = service.run_until_closed(ticket_id)
        return {"ticket": final, "version": service.ticket_version_spec(ticket_id)}
    finally:
        service.close()


def run_ticket(target: Path, data: SyntheticData, roles: dict, subject: str, seed: int) -> dict:
    """One ticket of this benchmark (a subject, a seed) through the embedded service."""
    run = cache_home() / "bench" / "tickets" / f"{subject}-seed{seed}-{time.strftime('%H%M%S')}"
    files = {"retain.jsonl": data.qa(roles["retain"]), "utility.jsonl": data.qa(roles["utility"])}
    return run_embedded_ticket(run, MODEL_NAME, str(target), POLICY.format(seed=seed), files,
                               data.records[subject], subject)  # fmt: skip


def ticket_row(before: dict, after: dict, final: dict, subject: str, seed: int) -> dict:
    evaluation = final.get("evaluation") or {}
    stopping = evaluation.get("stopping") or {}
    general_same = [a == b for a, b in zip(before["general"], after["general"], strict=True)]
    return {
        "subject": subject,
        "seed": seed,
        "verdict": final["state"],
        "leak_before": {
            **(final.get("assessment") or {}).get("leak_rate", {}),
            "unseen": before["unseen"],
        },
        "leak_after": {**evaluation.get("leak_rate", {}), "unseen": after["unseen"]},
        "neighbours_recall": {
            "before": before["neighbours_recall"],
            "after": after["neighbours_recall"],
        },
        "general_unchanged": fmean(general_same),
        "fluency": after["fluency"],
        "utility_ratio": (evaluation.get("utility") or {}).get("ratio"),
        "steps": evaluation.get("cost", {}).get("steps"),
        "stopped_at": stopping.get("stopped_at"),
        "restored_from": stopping.get("restored_from"),
        "stage_s": evaluation.get("stage_s", {}),
    }


def run_ticket_bench(
    bench: TicketBench,
    command: str,
    commit: str,
    log: Callable[[str], None] = print,
    results_dir: Path = RESULTS,
) -> Path:
    """Every subject × seed ticket (seed-major, so an interrupted run covers every subject),
    rows written after each ticket; returns the table's path."""
    target = bench.target()
    data = target.data
    roles = bench.roles(data)
    if not target.folder.is_dir():
        log(f"fine-tuning the target on {bench.customers} customers (cached afterwards)")
    folder = target.build()
    fingerprint = folder_hash(folder)
    base = load_model(str(folder))
    others = others_answers(base, data, roles)
    before = {s: {**subject_answers(base, data, s), **others} for s in roles["subjects"]}
    rows_path = results_dir / "tickets" / "rows.json"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(bench.seeds):
        for subject in roles["subjects"]:
            started = time.perf_counter()
            ran = run_ticket(folder, data, roles, subject, seed)
            if ran["version"] is None:  # the pipeline failed: no model to ask
                row = {"subject": subject, "seed": seed, "verdict": ran["ticket"]["state"],
                       "error": ran["ticket"].get("error")}  # fmt: skip
            else:
                made = load_model(ran["version"])
                after = {
                    **subject_answers(made, data, subject),
                    **others_answers(made, data, roles),
                }
                row = ticket_row(before[subject], after, ran["ticket"], subject, seed)
            row["wall_s"] = time.perf_counter() - started
            rows.append(row)
            log(json.dumps(row))
            header = {"command": command, "commit": commit, "target_hash": fingerprint}
            rows_path.write_text(json.dumps({**header, "rows": rows}, indent=1))
    from bench.tickets_report import write_table

    return write_table(rows_path, results_dir / "tickets.md", bench)
