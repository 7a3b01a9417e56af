"""GRUN vs full fine-tuning vs LoRA, for GradDiff, NPO and IdkNLL, on the built-in model.

The target and data slice are the methods benchmark's (benchmarks/methods_sanity.py): the
built-in model fine-tuned on 16 synthetic QA (2 customers); forget = one customer's 8 QA,
retain = the other's. Each cell runs in its own process so its peak RSS is its own, and
reports trainable parameters, wall time per step, peak memory, and the forget / retain answer
probability before and after (and, for GRUN, the gate values).

Usage: nice python benchmarks/grun_cost.py [--steps 10] [--methods graddiff,npo,idk]
       [--adapters full,lora,grun] [--lr-grun 1e-2]
Writes benchmarks/results/grun_cost.md, or --output (command and commit included).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import head_commit, run_cells
from methods_sanity import TARGET, build_target, data_slice, mean_prob

from worker.engine.models import DEFAULT_MODEL, load_model
from worker.engine.unlearn import UnlearnConfig, unlearn

RESULTS = Path(__file__).parent / "results" / "grun_cost.md"


def probabilities(loaded, splits) -> dict[str, float]:
    return {name: mean_prob(loaded, splits[name]) for name in ("forget", "retain")}


def median_step(times: list[float]) -> float:
    """Median step duration from cumulative times: robust to the first step's warm-up and to
    the steps that also wrote unlearn's per-epoch checkpoint (all weights + optimizer state
    for full FT)."""
    return statistics.median(b - a for a, b in itertools.pairwise(times))


def run_cell(method: str, adapter: str, steps: int, lr: float, grun_options: dict) -> dict:
    splits = data_slice()
    loaded = load_model(str(TARGET))
    total_parameters = sum(p.numel() for p in loaded.model.parameters())
    before = probabilities(loaded, splits)
    with tempfile.TemporaryDirectory() as scratch:
        cfg = UnlearnConfig(
            output=str(Path(scratch) / "out"), model=str(TARGET), method=method, adapter=adapter,
            steps=steps, lr=lr, batch_size=4,
            adapter_options=grun_options if adapter == "grun" else {},
        )  # fmt: skip
        elapsed, cpu = [], [time.process_time()]

        def on_progress(progress) -> None:
            elapsed.append(progress.elapsed_s)
            cpu.append(time.process_time())

        info = unlearn(cfg, splits["forget"], splits["retain"], loaded=loaded,
                       on_progress=on_progress)  # fmt: skip
    loaded.model.eval()
    cost = info["cost"]
    row = {
        "method": method, "adapter": adapter, "lr": lr, "steps": steps,
        "before": before, "after": probabilities(loaded, splits),
        "step_s": median_step([0.0, *elapsed]), "cpu_step_s": median_step(cpu),
        "loop_s": cost["wall_time_s"],
        "peak_mb": cost["peak_memory_mb"],
        "trainable": cost["trainable_parameters"], "total": total_parameters,
    }  # fmt: skip
    if adapter == "grun":
        # run.json's gate report: the newest module's mean gate on each question set.
        report = info["diagnostics"]["gates"]
        row["gates"] = {name: sets[-1]["mean"] for name, sets in report.items()}
    return row


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr-full", type=float, default=2e-5)
    parser.add_argument("--lr-lora", type=float, default=2e-4)
    parser.add_argument("--lr-grun", type=float, default=1e-2)
    parser.add_argument("--grun-options", default="{}", help="JSON adapter options for GRUN")
    parser.add_argument("--methods", default="graddiff,npo,idk")
    parser.add_argument("--adapters", default="full,lora,grun")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the markdown table")
    parser.add_argument("--only", nargs=2, metavar=("METHOD", "ADAPTER"), help=argparse.SUPPRESS)
    return parser.parse_args()


def cell_line(r: dict, full_step_s: float | None) -> str:
    share = f"{r['cpu_step_s'] / full_step_s:.0%}" if full_step_s else "n/a"
    gates = ""
    if "gates" in r:
        g = r["gates"]
        gates = (f"{g['forget']:.2f} / {g['paraphrased_forget']:.2f} / {g['retain']:.2f} / "
                 f"{g['general']:.2f}")  # fmt: skip
    return (
        f"| {r['method']} | {r['adapter']} | {r['lr']:g} | {r['trainable']:,} "
        f"({r['trainable'] / r['total']:.2%}) | {r['step_s']:.2f} | {r['cpu_step_s']:.2f} "
        f"| {share} | {r['loop_s']:.0f} "
        f"| {r['peak_mb']:.0f} "
        f"| {r['before']['forget']:.3f} → {r['after']['forget']:.3f} "
        f"| {r['before']['retain']:.3f} → {r['after']['retain']:.3f} | {gates} |"
    )


def table(args, rows: list[dict]) -> str:
    full_steps = {r["method"]: r["cpu_step_s"] for r in rows if r["adapter"] == "full"}
    lines = [
        "# GRUN vs full fine-tuning vs LoRA: cost and effect on the built-in model",
        "",
        f"Command: `nice python benchmarks/grun_cost.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head_commit()}; torch {torch.__version__}; CPU, "
        f"{torch.get_num_threads()} threads shared with other jobs (times are noisy).  ",
        "Target: SmolLM2-135M-Instruct fully fine-tuned on 16 synthetic QA (methods_sanity's "
        "target). Forget = one customer (8 QA), retain = the other (8 QA). "
        f"Each cell: {args.steps} steps, batch 4 forget + 4 retain, default loss settings "
        "(alpha = gamma = 1, NPO beta 0.1); LoRA rank 16 on all linear layers; GRUN defaults "
        f"(rank 4, MLP gate, layers 19/23/29 of 30, last prompt token, lambda_g 10) with options "
        f"{args.grun_options}. "
        "Prob = mean over records of exp(-mean answer NLL). s/step = median step duration, "
        "wall clock and process CPU time (CPU time is less distorted by the other jobs on "
        "these 2 cores; GRUN includes its gate loss); loop = the whole training loop, warm-up "
        "and unlearn's per-epoch checkpoints included. Peak = process max RSS, loading included. "
        "Gates = mean σ(g) of the GRUN module on forget / paraphrased forget / retain / "
        "16 general questions.",
        "",
        "| method | adapter | lr | trainable params (share) | wall s/step | CPU s/step "
        "| CPU vs full | loop (s) "
        "| peak RSS (MB) "
        "| forget prob before → after | retain prob before → after | gates f / para / r / gen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [cell_line(r, full_steps.get(r["method"])) for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    lrs = {"full": args.lr_full, "lora": args.lr_lora, "grun": args.lr_grun}
    if args.only:
        method, adapter = args.only
        options = json.loads(args.grun_options)
        print(json.dumps(run_cell(method, adapter, args.steps, lrs[adapter], options)))
        return
    build_target(args.model)
    rows = run_cells(__file__, args.methods, args.adapters)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table(args, rows))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
