"""Sanity numbers for every unlearning method × {full, lora} on the built-in model.

The target is the built-in model fine-tuned on a small synthetic slice (2 customers, 16 QA);
one customer (8 QA) is forgotten, the other is the retain set. For each method and adapter:
the forget and retain answers' probability (mean over records of exp(-mean answer NLL))
before and after, wall time of the unlearning loop and peak memory (each cell runs in its own
process, so the peak RSS is that cell's own, loading included).

Usage: nice python benchmarks/methods_sanity.py [--steps 5] [--methods ga,npo] [--adapters full]
Writes benchmarks/results/methods_sanity.md (command and commit included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import fmean

import torch
from common import head_commit, run_cells

from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.models import DEFAULT_MODEL, load_model
from worker.engine.objectives import OBJECTIVES, LossSettings
from worker.engine.synthetic import synthetic_dataset
from worker.engine.unlearn import UnlearnConfig, unlearn
from worker.runner import answer_probs

RESULTS = Path(__file__).parent / "results" / "methods_sanity.md"
TARGET = Path(tempfile.gettempdir()) / "obliviate-methods-sanity" / "target"


def data_slice() -> dict:
    """3 customers, 1 held out: train = 16 QA of 2 customers; forget = 1 customer's 8 QA."""
    return synthetic_dataset(n_customers=3, n_holdout=1, seed=0).splits(n_forget=1)


def build_target(model: str) -> Path:
    if not (TARGET / "config.json").is_file():
        cfg = FinetuneConfig(data="synthetic", output=str(TARGET), model=model, epochs=6,
                             lr=1e-4, batch_size=8, resume=True)  # fmt: skip
        finetune(cfg, data_slice()["train"])
    return TARGET


def mean_prob(loaded, records) -> float:
    """Mean over records of exp(-mean NLL of the answer tokens) (docs/metrics.md, Prob)."""
    loaded.model.eval()
    return fmean(answer_probs(loaded, records))


def run_cell(method: str, adapter: str, steps: int, lr: float) -> dict:
    splits = data_slice()
    loaded = load_model(str(TARGET))
    before = {"forget": mean_prob(loaded, splits["forget"]),
              "retain": mean_prob(loaded, splits["retain"])}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        cfg = UnlearnConfig(
            output=str(Path(scratch) / "out"), model=str(TARGET), method=method, adapter=adapter,
            steps=steps, lr=lr, batch_size=4, loss=LossSettings(),
        )  # fmt: skip
        info = unlearn(cfg, splits["forget"], splits["retain"], loaded=loaded)
    after = {"forget": mean_prob(loaded, splits["forget"]),
             "retain": mean_prob(loaded, splits["retain"])}  # fmt: skip
    return {"method": method, "adapter": adapter, "lr": lr, "before": before, "after": after,
            "wall_s": info["cost"]["wall_time_s"], "peak_mb": info["cost"]["peak_memory_mb"],
            "trainable": info["cost"]["trainable_parameters"]}  # fmt: skip


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr-full", type=float, default=5e-5)
    parser.add_argument("--lr-lora", type=float, default=5e-4)
    parser.add_argument("--methods", default=",".join(OBJECTIVES))
    parser.add_argument("--adapters", default="full,lora")
    # One thread: on these 2 shared cores torch's second thread mostly waits (tiny model: 40x).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs=2, metavar=("METHOD", "ADAPTER"), help=argparse.SUPPRESS)
    return parser.parse_args()


def table(args, rows: list[dict]) -> str:
    lines = [
        "# Unlearning methods: sanity numbers on the built-in model",
        "",
        f"Command: `python benchmarks/methods_sanity.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head_commit()}; torch {torch.__version__}; CPU, "
        f"{torch.get_num_threads()} threads, shared with other jobs (times are noisy).  ",
        "Target: SmolLM2-135M-Instruct fully fine-tuned on 16 synthetic QA (2 customers, 6 "
        "epochs, lr 1e-4). Forget = one customer (8 QA), retain = the other (8 QA). "
        f"Each cell: {args.steps} steps, batch 4 forget + 4 retain, default loss settings "
        "(alpha = gamma = 1; NPO/IdkDPO beta 0.1, SimNPO 4.5; RMU layer 7 of 30, steering "
        "5 x the reference hidden norm), "
        f"lr {args.lr_full} full / {args.lr_lora} LoRA "
        "(rank 16, all linear layers). Prob = mean over records of exp(-mean answer NLL). "
        "Wall time = the training loop; peak = process max RSS (loading included).",
        "",
        "| method | adapter | forget prob before → after | retain prob before → after "
        "| wall (s) | peak RSS (MB) | trainable params |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['adapter']} | {r['before']['forget']:.3f} → "
            f"{r['after']['forget']:.3f} | {r['before']['retain']:.3f} → "
            f"{r['after']['retain']:.3f} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['trainable']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        method, adapter = args.only
        lr = args.lr_full if adapter == "full" else args.lr_lora
        print(json.dumps(run_cell(method, adapter, args.steps, lr)))
        return
    build_target(args.model)
    rows = run_cells(__file__, args.methods, args.adapters)
    RESULTS.write_text(table(args, rows))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
