"""Tokens/s and peak memory of a full fine-tuning step on the built-in model, bf16 vs fp32.

Usage: python benchmarks/finetune_speed.py [--steps 5] [--batch-size 8] [--seq-len 96]
Writes benchmarks/results/finetune_speed.md (command and commit included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from worker.engine.models import DEFAULT_MODEL, load_model, pick_autocast
from worker.engine.objectives.tokens import answer_nll
from worker.engine.train import peak_memory_mb

RESULTS = Path(__file__).parent / "results" / "finetune_speed.md"


def measure(model_spec: str, precision: str, steps: int, batch_size: int, seq_len: int) -> dict:
    loaded = load_model(model_spec, precision=precision)
    model = loaded.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timings = []
    for step in range(steps + 1):  # the first step warms up kernels and is not counted
        started = time.perf_counter()
        with loaded.autocast():
            loss = answer_nll(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            timings.append(time.perf_counter() - started)
    step_s = sum(timings) / len(timings)
    return {
        "precision": precision,
        "autocast": str(pick_autocast(loaded.device, precision)),
        "step_s": step_s,
        "tokens_per_s": batch_size * seq_len / step_s,
        "peak_mb": peak_memory_mb(loaded.device),
    }


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--only", help="measure one precision and print JSON (used internally)")
    return parser.parse_args()


def table(args, rows: list[dict]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return "\n".join(
        [
            "# Fine-tuning step speed, built-in model",
            "",
            f"Command: `python benchmarks/finetune_speed.py {' '.join(sys.argv[1:])}`  ",
            f"Commit: {commit.stdout.strip()}; torch {torch.__version__}; "
            f"{torch.get_num_threads()} threads; full fine-tuning (AdamW), batch "
            f"{args.batch_size} x {args.seq_len} tokens; mean of {args.steps} steps after one "
            "warm-up step; each precision in its own process (peak RSS includes loading). "
            f"Load average when written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(other jobs running inflate s/step).",
            "",
            "| precision | autocast | s/step | tokens/s | peak RSS (MB) |",
            "|---|---|---|---|---|",
            *[
                f"| {r['precision']} | {r['autocast']} | {r['step_s']:.2f} | "
                f"{r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} |"
                for r in rows
            ],
        ]
    )


def main() -> None:
    args = parse_args()
    if args.only:
        print(json.dumps(measure(args.model, args.only, args.steps, args.batch_size, args.seq_len)))
        return
    rows = []
    for precision in ("bf16", "fp32"):
        # A fresh process per precision, so one's peak memory does not hide the other's.
        out = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--only", precision],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = table(args, rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
