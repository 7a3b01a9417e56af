"""What an unlearning step costs, computing everything vs only what changes (issue 14).

Per method × adapter, two runs side by side in one process, on the demo ticket's data and
target (the built-in model fine-tuned on 4 synthetic customers, `obliviate demo`'s cached
target): forget = one customer's 8 QA, retain = two others' 16 QA, batch 4 + 4.
- "everything": reference values recomputed at every step, GRUN from the embedding up;
- "once": reference values stored per sequence (objectives/reference.py), GRUN started at its
  lowest layer from stored hidden states (adapters/frozen_prefix.py), frozen Linear weights
  cast to bf16 once (precision.py), eager attention on the CPU (attention.py): today's defaults.
Each run first takes one epoch of every stream (8 steps: every sequence seen once, the stores
filled), then `--steps` timed steps of the real loop (`train()`); s/step is their median.
Peak memory is the run's own (VmHWM reset at its start), the loaded model included.

Usage: nice python benchmarks/unlearn_cost.py [--steps 4] [--methods idk,npo,graddiff,rmu]
       [--adapters full,lora,grun]
Writes benchmarks/results/unlearn_cost.md, or --output (command and commit included).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from common import head_commit

from cli.demo import demo_target, demo_ticket_data
from worker.engine.adapters import default_lr, get_adapter
from worker.engine.attention import training_attention
from worker.engine.models import DEFAULT_MODEL, load_model
from worker.engine.objectives import LossSettings, get_objective
from worker.engine.objectives.refusals import refusals_for
from worker.engine.precision import frozen_linears_cast
from worker.engine.train import TrainConfig, peak_memory_mb, reset_peak_memory, train
from worker.engine.unlearn import UnlearnConfig, UnlearnData, resolve_settings, step_loss_factory

RESULTS = Path(__file__).parent / "results" / "unlearn_cost.md"
# One pass over every stream, so every sequence is stored: the longest is GRUN's general
# questions, 16 in two formats (chat template, plain text) drawn 4 per step.
WARMUP = 8
# MiB of every store; whether the run casts frozen weights once and trains in eager attention
# (what `recipe.execute` does).
MODES = {"everything": (0, False), "once": (1024, True)}


def time_run(target: str, data: UnlearnData, method: str, adapter_name: str, store_mb: int,
             as_executed: bool, steps: int) -> dict:  # fmt: skip
    loaded = load_model(target)
    reset_peak_memory(loaded.device)
    objective = get_objective(method)
    settings = resolve_settings(objective, LossSettings(rmu_layer=23))  # a GRUN layer
    options = {"prefix_cache_mb": store_mb} if adapter_name == "grun" else {}
    adapter = get_adapter(adapter_name, **options)
    loaded.model = adapter.attach(loaded.model, needs_reference=objective.uses_reference(settings))
    cfg = UnlearnConfig(output="unused", method=method, adapter=adapter_name,
                        reference_cache_mb=store_mb)  # fmt: skip
    step_loss = step_loss_factory(cfg, objective, settings, data)(loaded, adapter)
    ends = []
    dtype = loaded.autocast_dtype if as_executed else None
    config = TrainConfig(steps=WARMUP + steps, lr=default_lr(adapter_name))
    attention = training_attention(loaded.model, loaded.device) if as_executed else nullcontext()
    with frozen_linears_cast(loaded.model, dtype), attention:
        result = train(
            adapter.trainable(), step_loss, config,
            device=loaded.device, autocast=loaded.autocast,
            on_progress=lambda progress: ends.append(time.perf_counter()),
        )  # fmt: skip
    timed = [b - a for a, b in itertools.pairwise(ends[WARMUP - 1 :])]
    return {
        "step_s": statistics.median(timed),
        "warmup_s": ends[WARMUP - 1] - ends[0] if WARMUP > 1 else 0.0,
        "peak_mb": peak_memory_mb(loaded.device),
        "trainable": result.trainable_parameters,
    }


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--methods", default="idk,npo,graddiff,rmu")
    parser.add_argument("--adapters", default="full,lora,grun")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args()


def table(args, rows: list[dict]) -> str:
    best_full = {r["method"]: r["once"]["step_s"] for r in rows if r["adapter"] == "full"}
    lines = [
        "# Unlearning step cost: computing everything vs only what changes",
        "",
        f"Command: `nice python benchmarks/unlearn_cost.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head_commit()}; torch {torch.__version__}; CPU, "
        f"{torch.get_num_threads()} threads, bf16 autocast where the CPU has it.  ",
        "Target: `obliviate demo`'s (SmolLM2-135M-Instruct fine-tuned on 4 synthetic "
        "customers). Forget 8 QA, retain 16 QA, batch 4 + 4; GRUN defaults (layers 19/23/29 of "
        "30, edit at every position, 4 general questions per step as gate negatives); RMU "
        "steers layer 23. s/step: median of "
        f"{args.steps} steps after a {WARMUP}-step warm-up epoch; peak: the run's peak RSS, "
        'model included. "everything": reference values and (GRUN) the frozen layers '
        "recomputed at every step, frozen weights cast by autocast at every call, PyTorch's "
        'fused attention; "once": stored per sequence, cast once per run, eager attention on '
        "the CPU (the defaults). Both: GRUN's gate-only passes without grad through the model, "
        "its orthogonal R computed once per step.",
        "",
        "| method | adapter | trainable | s/step everything | s/step once | speed-up "
        "| vs full (once) | peak MB everything | peak MB once |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        before, after = r["everything"], r["once"]
        full = best_full.get(r["method"])
        share = f"{after['step_s'] / full:.2f}×" if full else "n/a"
        lines.append(
            f"| {r['method']} | {r['adapter']} | {after['trainable']:,} "
            f"| {before['step_s']:.2f} | {after['step_s']:.2f} "
            f"| {before['step_s'] / after['step_s']:.2f}× | {share} "
            f"| {before['peak_mb']:.0f} | {after['peak_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    target, synthetic = demo_target(args.model, customers=4, epochs=8, seed=0)
    _, forget, retain, _ = demo_ticket_data(synthetic, 4)
    rows = []
    for method in args.methods.split(","):
        refusals = refusals_for(None) if get_objective(method).needs_refusals else []
        data = UnlearnData(forget, retain, refusals)
        for adapter in args.adapters.split(","):
            row = {"method": method, "adapter": adapter}
            for mode, (store_mb, as_executed) in MODES.items():
                row[mode] = time_run(
                    target, data, method, adapter, store_mb, as_executed, args.steps
                )
            rows.append(row)
            print(row, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table(args, rows))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
