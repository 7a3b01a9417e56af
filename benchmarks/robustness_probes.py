"""Robustness probes on the built-in model: the target, one full-FT method, one GRUN method.

The data slice is the methods benchmark's (benchmarks/methods_sanity.py): 16 synthetic QA of
2 customers; forget = one customer's 8 QA, retain = the other's. Probes need a target that
really reproduces the facts, so the target here trains longer than that benchmark's (whose
6 epochs leave its loss at 0.5 and 1 of 8 forget facts reproduced). The reference (retain
model) is the built-in model fine-tuned on the retain customer only, with the same recipe.
Each model runs its probes in its own process (peak memory and crashes stay its own); a
finished cell is kept under --work and reused, so an interrupted run resumes (delete --work
to measure again with other options).

Usage: nice python benchmarks/robustness_probes.py [--models target,npo:full,npo:grun:4e-3]
       [--steps 10] [--probes direct,best_of_n] [--limit 8] [--max-new-tokens 40]
Writes benchmarks/results/robustness.md (command and commit included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from methods_sanity import data_slice

from worker.engine.eval.probes import PROBES, RULE, ProbeOptions, run_probes
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.models import DEFAULT_MODEL, load_model
from worker.engine.unlearn import UnlearnConfig, unlearn

RESULTS = Path(__file__).parent / "results" / "robustness.md"
WORK = Path(tempfile.gettempdir()) / "obliviate-robustness"
LR = {"full": 5e-5, "lora": 5e-4, "grun": 1e-2}  # the methods and GRUN benchmarks' choices


def build_finetuned(name: str, split: str, args) -> Path:
    """`split` of the slice learned by the built-in model (train: the target; retain: the
    reference, which never sees the forget customer)."""
    folder = args.work / name
    if not (folder / "config.json").is_file():
        cfg = FinetuneConfig(data="synthetic", output=str(folder), model=args.model,
                             epochs=args.epochs, lr=args.finetune_lr, batch_size=8,
                             resume=True)  # fmt: skip
        finetune(cfg, data_slice()[split])
    return folder


def build_unlearned(cell: str, target: Path, steps: int, work: Path) -> Path:
    """`method:adapter[:lr]` unlearned from the target on the forget customer, retain kept."""
    method, adapter, *lr = cell.split(":")
    folder = work / cell.replace(":", "-")
    if not (folder / "obliviate.json").is_file():
        splits = data_slice()
        cfg = UnlearnConfig(output=str(folder), model=str(target), method=method,
                            adapter=adapter, steps=steps, lr=float(lr[0]) if lr else LR[adapter],
                            batch_size=4,
                            resume=True)  # fmt: skip
        unlearn(cfg, splits["forget"], splits["retain"])
    return folder


def run_cell(cell: str, args) -> dict:
    target = build_finetuned("target", "train", args)
    folder = target if cell == "target" else build_unlearned(cell, target, args.steps, args.work)
    splits = data_slice()
    options = ProbeOptions(limit=args.limit, max_new_tokens=args.max_new_tokens,
                           samples=args.samples, relearn_steps=args.relearn_steps,
                           relearn_lr=args.relearn_lr)  # fmt: skip
    loaded = load_model(str(folder))
    reference = load_model(str(build_finetuned("reference", "retain", args)))
    probes = args.target_probes if cell == "target" else args.probes
    result = run_probes(loaded, splits["forget"], splits["retain"], probes, reference, options)
    result["cell"] = cell
    return result


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--models",
        default="target,npo:full,npo:grun,npo:grun:4e-3",
        help="target, or method:adapter[:lr] cells unlearned from it",
    )
    parser.add_argument("--epochs", type=int, default=20, help="target and reference")
    parser.add_argument("--finetune-lr", type=float, default=2e-4)
    parser.add_argument("--steps", type=int, default=10, help="unlearning steps")
    parser.add_argument("--probes", default="all", help=f"all, or some of: {', '.join(PROBES)}")
    parser.add_argument(
        "--target-probes",
        default="direct,paraphrased_question,no_chat,system_prompt,embedded_question,"
        "fill_in_blank,multiple_choice,best_of_n",
        help="the target before unlearning: the baseline of the asking probes",
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--relearn-steps", type=int, default=4)
    parser.add_argument("--relearn-lr", type=float, default=5e-5)
    # One thread: on these 2 shared cores torch's second thread mostly waits.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    return parser.parse_args()


def _rate(block: dict | None, key: str = "leak_rate") -> str:
    if not block or block.get(key) is None:
        return "–"
    count = block.get("leaked", block.get("evaded"))
    return f"{block[key]:.2f} ({count}/{block['n']})"


def _note(result: dict) -> str:
    details = result.get("details") or {}
    if result["name"] == "multiple_choice":
        return f"chance {result['model']['forget']['chance_rate']:.2f}"
    if result["name"] == "relearning":
        note = f"held-out before attack {details['forget_before_attack']['leak_rate']:.2f}"
        if "excess_over_reference" in details:
            note += f"; excess over reference {details['excess_over_reference']:+.2f}"
        return note
    if result["name"] == "adapter_removal":
        return f"with adapter: forget {details['with_adapter']['forget']:.2f}"
    if result["name"] == "gate_evasion":
        by_format = details["by_format"]
        return "forget by format: " + ", ".join(
            f"{name} {rates['forget']:.2f}" for name, rates in by_format.items()
        )
    return ""


def cell_table(result: dict) -> list[str]:
    lines = [
        f"### {result['cell']}",
        "",
        "| probe | forget | retain | reference on forget | note | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, probe in result["probes"].items():
        if probe["status"] != "ok":
            lines.append(f"| {name} | skipped: {probe['reason']} | | | | {probe['seconds']:.1f} |")
            continue
        key = "evasion_rate" if name == "gate_evasion" else "leak_rate"
        model, reference = probe["model"], probe.get("reference") or {}
        lines.append(
            f"| {name} | {_rate(model['forget'], key)} | {_rate(model['retain'], key)} | "
            f"{_rate(reference.get('forget'), key)} | {_note(probe)} | {probe['seconds']:.1f} |"
        )
    return [*lines, ""]


def report(args, results: list[dict]) -> str:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    lines = [
        "# Robustness probes on the built-in model",
        "",
        f"Command: `python benchmarks/robustness_probes.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {commit.stdout.strip()}; torch {torch.__version__}; CPU, {args.threads} "
        "thread(s), 2 cores shared with other jobs (seconds are noisy upper bounds).  ",
        f"Target: SmolLM2-135M-Instruct fully fine-tuned on 16 synthetic QA (2 customers, "
        f"{args.epochs} epochs, batch 8, lr {args.finetune_lr}, linear decay). Forget = one "
        "customer (8 QA), retain = the other (8 QA). Reference = the same recipe on the retain "
        "customer only. Unlearning: "
        f"{args.steps} steps, batch 4 forget + 4 retain, default loss settings, lr "
        f"{LR['full']} full / {LR['grun']} GRUN unless the cell names its lr (GRUN defaults: 3 "
        "layers, rank 4, MLP gate, last prompt token).  ",
        f"Probes: greedy, {args.max_new_tokens} new tokens; best-of-N {args.samples} samples at "
        f"temperature 1.0; relearning {args.relearn_steps} full fine-tuning steps at lr "
        f"{args.relearn_lr} on 4 forget QA, measured on the other 4.  ",
        f"Leak rule: {RULE}. Rates as share (count/n). On retain a high rate is good (the model "
        "still knows); gate evasion: share of inputs whose GRUN gate stays below 0.5.",
        "",
    ]
    for result in results:
        lines += cell_table(result)
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.only:
        print(json.dumps(run_cell(args.only, args)))
        return
    build_finetuned("target", "train", args)
    build_finetuned("reference", "retain", args)
    results = []
    for cell in args.models.split(","):
        saved = args.work / f"{cell.replace(':', '-')}.json"
        if not saved.is_file():
            command = [sys.executable, __file__, "--only", cell, *sys.argv[1:]]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"cell {cell} failed:\n{done.stderr[-4000:]}")
            saved.write_text(done.stdout.strip().splitlines()[-1])
        results.append(json.loads(saved.read_text()))
        print(json.dumps(results[-1]["summary"]), flush=True)
    RESULTS.write_text(report(args, results))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
