"""Sequential deletion requests with GRUN: each request trains its own gated module on top of
the earlier ones (frozen, active). What happens to earlier forget sets, the retain set and the
gates after 1, 2 and 5 requests?

Target and data: the methods benchmark's (benchmarks/methods_sanity.py): the built-in model
fine-tuned on customers A and B (8 QA each). Request k (k = 1..5) forgets A's k-th QA; A's
last 3 QA are never requested (same person, other facts); B's 8 QA are the retain set.

Usage: nice python benchmarks/grun_sequential.py [--steps 8] [--lr 1e-2] [--method npo]
Writes benchmarks/results/grun_sequential.md (command and commit included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import head_commit
from methods_sanity import TARGET, build_target, data_slice, mean_prob

from worker.engine.adapters.grun import GENERAL_QUESTIONS
from worker.engine.adapters.grun_gates import gate_report
from worker.engine.models import DEFAULT_MODEL, load_model
from worker.engine.unlearn import UnlearnConfig, unlearn

RESULTS = Path(__file__).parent / "results" / "grun_sequential.md"
REQUESTS = 5
REPORT_AFTER = (1, 2, 5)


def question_sets(splits) -> dict[str, list]:
    """Named record sets: each request's forget record, A's unrequested QA, the retain set."""
    customer_a = splits["forget"]
    sets = {f"req{k + 1}": [customer_a[k]] for k in range(REQUESTS)}
    sets["unrequested"] = list(customer_a[REQUESTS:])
    sets["retain"] = list(splits["retain"])
    return sets


def measure(folder: str, sets: dict[str, list]) -> dict:
    loaded = load_model(folder)
    probs = {name: mean_prob(loaded, records) for name, records in sets.items()}
    questions = {name: [r.question for r in records] for name, records in sets.items()}
    questions["general"] = list(GENERAL_QUESTIONS)
    gates = {}
    if hasattr(loaded.model, "grun_stack"):
        report = gate_report(loaded.model, loaded.tokenizer, questions, autocast=loaded.autocast)
        gates = {name: [m["mean"] for m in modules] for name, modules in report.items()}
    return {"prob": probs, "gates": gates}


def run(args, scratch: Path) -> tuple[dict, list[dict]]:
    sets = question_sets(data_slice())
    before = measure(str(TARGET), sets)
    model, results = str(TARGET), []
    for k in range(1, REQUESTS + 1):
        output = scratch / f"request{k}"
        cfg = UnlearnConfig(
            output=str(output), model=model, method=args.method, adapter="grun",
            adapter_options=json.loads(args.grun_options), steps=args.steps, lr=args.lr,
            batch_size=4,
        )  # fmt: skip
        started = time.perf_counter()
        info = unlearn(cfg, sets[f"req{k}"], sets["retain"])
        row = {"requests": k, "train_s": time.perf_counter() - started,
               "folder_kb": sum(p.stat().st_size for p in output.iterdir()) / 1024}  # fmt: skip
        row["loop_s"] = info["cost"]["wall_time_s"]
        if k in REPORT_AFTER:
            row.update(measure(str(output), sets))
        results.append(row)
        print(json.dumps(row), flush=True)
        model = str(output)
    return before, results


def table(args, before: dict, results: list[dict]) -> str:
    names = [f"req{k}" for k in range(1, REQUESTS + 1)] + ["unrequested", "retain"]
    lines = [
        "# Sequential GRUN requests on the built-in model",
        "",
        f"Command: `nice python benchmarks/grun_sequential.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head_commit()}; torch {torch.__version__}; CPU, "
        f"{torch.get_num_threads()} threads shared with other jobs (times are noisy).  ",
        "Target: methods_sanity's (SmolLM2-135M-Instruct fine-tuned on customers A and B, 8 QA "
        f"each). Request k forgets A's k-th QA with {args.method} + GRUN ({args.steps} steps, "
        f"lr {args.lr}, options {args.grun_options}); each request's module is trained on top "
        "of the earlier ones (frozen, active). `unrequested` = A's last 3 QA, never requested; "
        "`retain` = B's 8 QA (the retain set of every request).",
        "",
        "## Answer probability (mean exp(-mean answer NLL))",
        "",
        "| after | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| 0 (target) | " + " | ".join(f"{before['prob'][n]:.3f}" for n in names) + " |",
    ]
    reported = [r for r in results if "prob" in r]
    lines += [
        f"| {r['requests']} | " + " | ".join(f"{r['prob'][n]:.3f}" for n in names) + " |"
        for r in reported
    ]
    lines += [
        "",
        "## Gates: mean σ(g) of each module (m1 = request 1's ...) on each question set",
        "",
        "| after | module | " + " | ".join([*names, "general"]) + " |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for r in reported:
        for m in range(r["requests"]):
            cells = " | ".join(f"{r['gates'][n][m]:.2f}" for n in [*names, "general"])
            lines.append(f"| {r['requests']} | m{m + 1} | {cells} |")
    lines += [
        "",
        "## Cost per request",
        "",
        "| request | unlearn() wall (s) | training loop (s) | folder size (KB) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['requests']} | {r['train_s']:.0f} | {r['loop_s']:.0f} | {r['folder_kb']:.0f} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--method", default="npo")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--grun-options", default="{}", help="JSON adapter options")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    build_target(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        before, results = run(args, Path(scratch))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table(args, before, results))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
