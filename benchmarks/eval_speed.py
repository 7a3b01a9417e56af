"""How long the whole `tofu` evaluation takes, cold (nothing cached) and warm (re-run).

Usage: python benchmarks/eval_speed.py [--model smollm2-135m] [--split forget05] [--threads 1]
Writes benchmarks/results/eval_speed.md (command, commit and machine load included) and the
cold run's eval.json next to it in /tmp. Wall time depends on who else uses the cores, so CPU
seconds (all threads of this process) are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

from worker.engine.eval import EvalOptions, evaluate, write_eval
from worker.engine.models import DEFAULT_MODEL, load_model

RESULTS = Path(__file__).parent / "results" / "eval_speed.md"
PARTS = ("forget", "retain", "real_authors", "world_facts", "holdout")


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--split", default="forget05")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--limit", type=int, default=None, help="first N records per set")
    parser.add_argument("--eval-json", default=str(Path(tempfile.gettempdir()) / "eval_speed.json"))
    parser.add_argument("--output", default=str(RESULTS))
    return parser.parse_args()


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    ours = ["worker/engine/generate.py", *map(str, Path("worker/engine/eval").glob("*.py"))]
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *ours], text=True,
                           capture_output=True).stdout.strip()  # fmt: skip
    return out.stdout.strip() + (" (evaluation files modified)" if dirty else "")


def _cell(timing: dict | None, key: str) -> str:
    if not timing or key not in timing:
        return "-"
    return f"{timing[key]['wall_s']:.1f} / {timing[key]['cpu_s']:.1f}"


def table(cold: dict, warm: dict) -> list[str]:
    lines = [
        "| part | records | answers scored | scoring wall / cpu s | generations "
        "| generation wall / cpu s | warm re-run wall / cpu s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for part in PARTS:
        t, w = cold["timings"][part], warm["timings"][part]
        warm_wall = w["scoring"]["wall_s"] + w.get("generation", {}).get("wall_s", 0)
        warm_cpu = w["scoring"]["cpu_s"] + w.get("generation", {}).get("cpu_s", 0)
        lines.append(
            f"| {part} | {cold['sets'][part]['n']} | {t['answers_scored']} "
            f"| {_cell(t, 'scoring')} | {t.get('generated', '-')} | {_cell(t, 'generation')} "
            f"| {warm_wall:.1f} / {warm_cpu:.1f} |"
        )
    total, warm_total = cold["timings"]["total"], warm["timings"]["total"]
    lines.append(
        f"| **total** (incl. load, metrics) | | | | | {total['wall_s']:.1f} / {total['cpu_s']:.1f} "
        f"| {warm_total['wall_s']:.1f} / {warm_total['cpu_s']:.1f} |"
    )
    return lines


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    measured_commit = commit()  # before the run: the code that is measured
    loaded = load_model(args.model)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache_dir:
        options = EvalOptions(limit=args.limit, cache_dir=cache_dir)
        cold = evaluate(loaded, "tofu", args.split, options=options)
        warm = evaluate(loaded, "tofu", args.split, options=options)
    load_after = os.getloadavg()
    write_eval(args.eval_json, cold)
    lengths = [
        len(loaded.tokenizer(g)["input_ids"])
        for part in PARTS[:-1]
        for g in cold["sets"][part]["per_example"]["generation"]
    ]
    capped = sum(n >= options.max_new_tokens for n in lengths)
    command = "python " + " ".join(sys.argv)
    lines = [
        "# Evaluation speed: the whole `tofu` suite",
        "",
        f"- command: `{command}` (run under `nice`)",
        f"- commit: {measured_commit}; date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- model: {args.model} (hash {loaded.model_hash[:12]}), autocast "
        f"{loaded.autocast_dtype}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        f"- split {args.split}, limit {args.limit}; greedy generation ≤ "
        f"{options.max_new_tokens} new tokens, batch {options.generation_batch_size}; "
        f"scoring batches ≤ {options.token_budget} padded tokens",
        f"- generated answers: {len(lengths)}, {sum(lengths)} tokens, mean "
        f"{sum(lengths) / max(1, len(lengths)):.0f}, {capped} hit the "
        f"{options.max_new_tokens}-token cap",
        f"- machine load average (1 min) before / after: {load_before[0]:.1f} / "
        f"{load_after[0]:.1f} on {os.cpu_count()} cores: other jobs shared the cores",
        "",
        *table(cold, warm),
        "",
        "Times are seconds, wall / CPU (CPU = all threads of this process). Warm = the same "
        "command again: scores and generations come from the per-model cache.",
        "",
        "Summary of the cold run: "
        + json.dumps({k: v if v is None else round(v, 4) for k, v in cold["summary"].items()}),
        "",
    ]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
