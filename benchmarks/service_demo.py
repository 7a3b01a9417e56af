"""The demo ticket through the embedded service on the built-in model: seconds per stage,
leak rates before/after, utility ratio, versions published and audit events written.

Usage: nice python benchmarks/service_demo.py [--customers 4] [--epochs 8] [--steps 24]
Writes benchmarks/results/service_demo.md (command and commit included). The fine-tuned
target is cached by the demo (under OBLIVIATE_HOME), so only the first run fine-tunes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from cli.demo import demo_target, demo_ticket_data
from cli.service_story import ticket_story

RESULTS = Path(__file__).parent / "results" / "service_demo.md"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    target, data = demo_target("smollm2-135m", args.customers, args.epochs, seed=0)
    target_s = time.perf_counter() - started
    subject, forget, retain, utility = demo_ticket_data(data, args.customers)
    started = time.perf_counter()
    story = ticket_story(target, subject.customer_id, forget, retain, utility)
    ticket_s = time.perf_counter() - started
    final, events, versions = story["ticket"], story["events"], story["versions"]
    evaluation = final.get("evaluation") or {}
    stages = {k: round(v, 1) for k, v in evaluation.get("stage_s", {}).items()}
    cost = {k: v for k, v in evaluation.get("cost", {}).items() if isinstance(v, int | float)}
    before = (final.get("assessment") or {}).get("leak_rate")
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip()
    command = " ".join([Path(sys.executable).name, *sys.argv])
    lines = [
        "# Demo ticket through the embedded service (built-in model, CPU)",
        "",
        f"Command: `{command}` at commit {commit}; run folder {story['run_folder']}.",
        f"Target (fine-tune or cache hit): {target_s:.0f} s. Ticket story: {ticket_s:.0f} s.",
        "",
        f"- final state: **{final['state']}**; data key destroyed: {final['data_key_destroyed']}",
        f"- seconds per stage: {json.dumps(stages)}",
        f"- leak rate before (assess): {json.dumps(before)}",
        f"- leak rate after: {json.dumps(evaluation.get('leak_rate'))}",
        f"- forget answer prob: {json.dumps(evaluation.get('forget_prob'))}",
        f"- utility: {json.dumps(evaluation.get('utility'))}",
        f"- robustness probes: {json.dumps(evaluation.get('robustness'))}",
        f"- cost: {json.dumps(cost)}",
        f"- versions: {[(v['number'], v['status'], v['adapter']) for v in versions]}",
        f"- audit events for the ticket: {len(events)}: "
        + ", ".join(e["event_type"] for e in events),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
