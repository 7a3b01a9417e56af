"""The ticket benchmark's trained modules, asked again under another inference gate.

`obliviate bench tickets` keeps each ticket's run folder (cache home, bench/tickets/); its
model version is base + one GRUN module. Training does not depend on the inference gate (the
gate is soft while training), so the same modules can be asked the benchmark's questions
with their gates read another way, without training again. Measured per module: the subject's
questions as filed, reworded (the record's paraphrase) and in the wordings no run saw, the
neighbours' key-fact recall against the target's, and the general answers left unchanged.
The stopping check that ended each run used the gate the run was trained with.

Usage: nice python benchmarks/ticket_gates.py [--gates hard,consensus]
Writes benchmarks/results/tickets_inference_gate.md (command and commit included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from statistics import fmean

from common import head_commit

from bench.tickets import TicketBench, others_answers, subject_answers
from domain.paths import cache_home
from worker.engine.models import load_model
from worker.engine.stopping import ask_and_judge

RESULTS = Path(__file__).parent / "results" / "tickets_inference_gate.md"


def measure(loaded, data, roles, subject: str, target: dict) -> dict:
    asked = subject_answers(loaded, data, subject)
    reworded = [(r.paraphrased_question, r) for r in data.records[subject]]
    others = others_answers(loaded, data, roles)
    same = [a == b for a, b in zip(others["general"], target["general"], strict=True)]
    return {
        "direct": asked["direct"],
        "paraphrased": fmean(ask_and_judge(loaded, reworded, 48)[0]),
        "unseen": asked["unseen"],
        "neighbours_kept": others["neighbours_recall"] / target["neighbours_recall"],
        "general_unchanged": fmean(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gates", default="hard,consensus")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    bench = TicketBench()
    data = bench.target().data
    roles = bench.roles(data)
    target = others_answers(load_model(str(bench.target().folder)), data, roles)

    folder = str(bench.target().folder)
    versions = [  # the modules trained on this target (an earlier target's runs may be there)
        v
        for v in sorted((cache_home() / "bench" / "tickets").glob("*/artifacts/customers/v2"))
        if json.loads((v / "obliviate.json").read_text())["base_model"] == folder
    ]
    gates = args.gates.split(",")
    lines = [
        "# Ticket benchmark modules under another inference gate",
        "",
        f"Command: `nice python benchmarks/ticket_gates.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head_commit()}. The modules of the ticket runs in the cache "
        f"({len(versions)} tickets of `obliviate bench tickets`), each asked with its gates "
        "read as named; everything else as in benchmarks/results/tickets_per_layer_gate.md.",
        "",
        "| ticket | gate | direct | paraphrased | unseen | neighbours kept | general unchanged |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = {gate: [] for gate in gates}
    for version in versions:
        ticket = version.parents[2].name.rsplit("-", 1)[0]  # C00008-seed0
        loaded = load_model(str(version))
        for gate in gates:
            for request in loaded.model.grun_stack.requests:
                request.config = dataclasses.replace(request.config, inference_gate=gate)
            row = measure(loaded, data, roles, ticket.split("-")[0], target)
            rows[gate].append(row)
            cells = " | ".join(f"{row[k]:.2f}" for k in row)
            lines.append(f"| {ticket} | {gate} | {cells} |")
            print(lines[-1], flush=True)
    lines += ["", "| gate | mean direct | paraphrased | unseen | neighbours kept | min kept "
              "| general unchanged |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for gate, measured in rows.items():
        means = [fmean(r[k] for r in measured) for k in measured[0]]
        low = min(r["neighbours_kept"] for r in measured)
        lines.append(f"| {gate} | " + " | ".join(f"{m:.3f}" for m in means[:4])
                     + f" | {low:.2f} | {means[4]:.3f} |")  # fmt: skip
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
