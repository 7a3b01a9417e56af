"""`obliviate bench pretraining`: forgetting what the base model knew before any fine-tuning
(issue 17), methods × adapters, each a deletion ticket through the real pipeline.

The scenario (`pretraining_data.py`): the built-in model itself, never fine-tuned by us, is
asked to forget what it knows about Albert Einstein, and to keep other people and facts it
knows. Per cell the embedded service runs one ticket with the default policy, only the
method, the adapter and the data files named; then the version it made (published or held)
is measured with the corpus suite (`eval/corpus.py`: knowledge answered, multiple choice by
likelihood) on the ticket's facts and on the neighbours no run trained on, against the base
model, and on the general questions (answers unchanged).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import RESULTS
from bench.pretraining_data import FORGET, NEIGHBOURS, RETAIN
from bench.tickets import run_embedded_ticket
from domain.paths import cache_home
from domain.records import write_records
from worker.engine.eval.corpus import evaluate_corpus
from worker.engine.eval.general import GENERAL_QUESTIONS
from worker.engine.generate import generate_answers
from worker.engine.models import DEFAULT_MODEL, LoadedModel, load_model

CELLS = (("idk", "grun"), ("npo", "grun"), ("idk", "full"), ("npo", "full"))
MAX_NEW_TOKENS = 48
POLICY = """
[unlearning]
method = "{method}"
adapter = "{adapter}"
retain_data = "retain.jsonl"

[evaluation]
utility_data = "neighbours.jsonl"
"""


def measure(loaded: LoadedModel) -> dict:
    """The corpus suite on the scenario (knowledge = the ticket's facts, retain = the
    neighbours) and the general questions' answers."""
    with tempfile.TemporaryDirectory() as folder:
        write_records(Path(folder) / "knowledge.jsonl", FORGET)
        write_records(Path(folder) / "retain.jsonl", NEIGHBOURS)
        summary = evaluate_corpus(loaded, folder, MAX_NEW_TOKENS)["summary"]
    general = generate_answers(loaded, list(GENERAL_QUESTIONS), max_new_tokens=32)
    return {**summary, "general": general}


def run_cell(method: str, adapter: str, model: str) -> dict:
    """One ticket through the embedded service; the final ticket and its version's spec."""
    run = cache_home() / "bench" / "pretraining" / f"{method}-{adapter}-{time.strftime('%H%M%S')}"
    files = {"retain.jsonl": RETAIN, "neighbours.jsonl": NEIGHBOURS}
    return run_embedded_ticket(run, "base", model, POLICY.format(method=method, adapter=adapter),
                               files, FORGET, "einstein")  # fmt: skip


def cell_row(method: str, adapter: str, before: dict, after: dict, final: dict) -> dict:
    evaluation = final.get("evaluation") or {}
    unchanged = [a == b for a, b in zip(before["general"], after["general"], strict=True)]
    keys = ("knowledge_forget", "choice_forget", "knowledge_retain", "choice_retain")
    return {
        "method": method,
        "adapter": adapter,
        "verdict": final["state"],
        "reason": final.get("decision_reason"),
        "leak_after": evaluation.get("leak_rate", {}),
        **{key: {"before": before[key], "after": after[key]} for key in keys},
        "general_unchanged": sum(unchanged) / len(unchanged),
        "utility_ratio": (evaluation.get("utility") or {}).get("ratio"),
        "steps": (evaluation.get("cost") or {}).get("steps"),
        "unlearn_s": (evaluation.get("stage_s") or {}).get("unlearn"),
        "trainable_parameters": (evaluation.get("cost") or {}).get("trainable_parameters"),
    }


def run_pretraining_bench(
    cells: Sequence[tuple[str, str]] = CELLS,
    model: str = DEFAULT_MODEL,
    command: str = "obliviate bench pretraining",
    commit: str = "unknown",
    log: Callable[[str], None] = print,
    results_dir: Path = RESULTS,
) -> Path:
    """Every cell's ticket, rows written after each; returns the table's path. Rows of other
    cells already stored for the same model stay (each names its own command and commit), so a
    cell can be added or re-run without running the others again."""
    before = measure(load_model(model))
    rows_path = results_dir / "pretraining" / "rows.json"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    rerun = set(cells)
    rows = [
        row
        for row in stored.get("rows", [])
        if stored.get("model") == model and (row["method"], row["adapter"]) not in rerun
    ]
    for method, adapter in cells:
        started = time.perf_counter()
        ran = run_cell(method, adapter, model)
        if ran["version"] is None:  # the pipeline failed: no model to ask
            row = {"method": method, "adapter": adapter, "verdict": ran["ticket"]["state"],
                   "error": ran["ticket"].get("error")}  # fmt: skip
        else:
            after = measure(load_model(ran["version"]))
            row = cell_row(method, adapter, before, after, ran["ticket"])
        row |= {"wall_s": time.perf_counter() - started, "command": command, "commit": commit}
        rows.append(row)
        log(json.dumps(row))
        rows_path.write_text(json.dumps({"model": model, "rows": rows}, indent=1))
    return write_table(rows_path, results_dir / "pretraining.md")


def _pair(row: dict, key: str) -> str:
    pair = row[key]
    return " → ".join("n/a" if v is None else f"{v:.2f}" for v in (pair["before"], pair["after"]))


def write_table(rows_path: Path, table: Path) -> Path:
    stored = json.loads(rows_path.read_text())
    lines = [
        "# Pre-training knowledge: forgetting what the base model knew (issue 17)",
        "",
        "Commands and commits: "
        + "; ".join(sorted({f"`{r['command']}` at {r['commit']}" for r in stored["rows"]}))
        + "  ",
        f"Model: {stored['model']}, never fine-tuned by us. Ticket: its 3 facts about Albert "
        "Einstein (`bench/pretraining_data.py`), each with a paraphrase; retain term on "
        f"{len(RETAIN)} other facts it knows; neighbours: {len(NEIGHBOURS)} more that no run "
        "trains on. Default policy, only method, adapter and data files named.",
        "",
        "knowledge = share of questions answered (key fact in the greedy answer); choice = "
        "multiple choice by likelihood against 2 wrong answers (chance 0.33); before → after.",
        "",
        "| method | adapter | verdict | direct leak | paraphrased leak | ticket knowledge | "
        "ticket choice | neighbours' knowledge | neighbours' choice | general unchanged | "
        "utility ratio | steps | unlearn s | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in stored["rows"]:
        if "error" in row:
            lines.append(f"| {row['method']} | {row['adapter']} | {row['verdict']}: "
                         f"{row['error']} |" + " |" * 10 + f" {row['commit']} |")  # fmt: skip
            continue
        leak = row["leak_after"]
        cells = [
            row["method"], row["adapter"], row["verdict"], _num(leak.get("direct")),
            _num(leak.get("paraphrased")), _pair(row, "knowledge_forget"),
            _pair(row, "choice_forget"), _pair(row, "knowledge_retain"),
            _pair(row, "choice_retain"), _num(row["general_unchanged"]),
            _num(row["utility_ratio"]), str(row["steps"]), _num(row["unlearn_s"], 0),
            row["commit"],
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    held = [f"- {r['method']}-{r['adapter']}: {r['reason']}" for r in stored["rows"]
            if r.get("reason")]  # fmt: skip
    if held:
        lines += ["", "Decision reasons:", "", *held]
    table.write_text("\n".join(lines) + "\n")
    return table


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
