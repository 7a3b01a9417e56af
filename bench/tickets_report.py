"""The ticket benchmark's table (benchmarks/results/tickets.md), written from its stored rows."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

# issue 19's targets for the ticket benchmark
MIN_PUBLISHED = 0.9
MAX_PARAPHRASED = 0.05
MIN_NEIGHBOURS_KEPT = 0.95


def _mean(rows: list[dict], read) -> float | None:
    values = [v for v in (read(r) for r in rows) if v is not None]
    return fmean(values) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _kept(row: dict) -> float | None:
    recall = row["neighbours_recall"]
    return recall["after"] / recall["before"] if recall["before"] else None


def summary(rows: list[dict]) -> dict:
    measured = [r for r in rows if "leak_after" in r]
    return {
        "tickets": len(rows),
        "published": sum(r["verdict"] == "published" for r in rows) / max(len(rows), 1),
        "direct": _mean(measured, lambda r: r["leak_after"].get("direct")),
        "paraphrased": _mean(measured, lambda r: r["leak_after"].get("paraphrased")),
        "unseen": _mean(measured, lambda r: r["leak_after"]["unseen"]),
        "no_chat": _mean(measured, lambda r: r["leak_after"].get("no_chat")),
        "neighbours_kept": _mean(measured, _kept),
        "general_unchanged": _mean(measured, lambda r: r["general_unchanged"]),
        "fluency": _mean(measured, lambda r: r["fluency"]),
        "utility_ratio": _mean(measured, lambda r: r["utility_ratio"]),
        "wall_s": _mean(measured, lambda r: r["wall_s"]),
        "unlearn_s": _mean(measured, lambda r: r["stage_s"].get("unlearn")),
    }


def _target_line(name: str, value: float | None, goal: str, met: bool | None) -> str:
    verdict = "n/a" if met is None else ("met" if met else "missed")
    return f"| {name} | {_fmt(value)} | {goal} | {verdict} |"


def ticket_line(r: dict) -> str:
    if "leak_after" not in r:
        return f"| {r['subject']} | {r['seed']} | {r['verdict']} | {r.get('error')} |" + " |" * 9
    before, after = r["leak_before"], r["leak_after"]

    def pair(probe: str) -> str:
        return f"{_fmt(before.get(probe))} → {_fmt(after.get(probe))}"

    stages = r["stage_s"]
    recall = r["neighbours_recall"]
    return (
        f"| {r['subject']} | {r['seed']} | {r['verdict']} | {pair('direct')} "
        f"| {pair('paraphrased')} | {pair('unseen')} | {_fmt(after.get('no_chat'))} "
        f"| {_fmt(after.get('adapter_removal'))} "
        f"| {_fmt(recall['before'])} → {_fmt(recall['after'])} "
        f"| {_fmt(r['general_unchanged'])} | {_fmt(r['fluency'])} | {_fmt(r['utility_ratio'])} "
        f"| {r['steps']} ({r['stopped_at'] or 'budget'}) "
        f"| {_fmt(stages.get('assess'), 0)} / {_fmt(stages.get('unlearn'), 0)} / "
        f"{_fmt(stages.get('evaluate'), 0)} |"
    )


def write_table(rows_path: Path, output: Path, bench) -> Path:
    stored = json.loads(rows_path.read_text())
    rows = stored["rows"]
    s = summary(rows)
    kept_ok = None if s["neighbours_kept"] is None else s["neighbours_kept"] >= MIN_NEIGHBOURS_KEPT
    para_ok = None if s["paraphrased"] is None else s["paraphrased"] <= MAX_PARAPHRASED
    lines = [
        "# Ticket benchmark: one customer's deletion ticket at a time, through the pipeline",
        "",
        f"Command: `{stored['command']}`  ",
        f"Commit: {stored['commit']}; target sha256 {stored['target_hash'][:16]}…  ",
        f"Target: {bench.model} fine-tuned on {bench.customers} synthetic customers "
        f"({bench.epochs} epochs, 8 QA each, questions in varied wordings). Roles: retain = "
        "customers 0-5 (the policy's retain_data), utility = 6-7 (utility_data), subjects = "
        "8, 10, 12, …, neighbours = 9, 11, 13, … (never trained on by a run, never a subject). "
        "Each ticket: the default policy (worker/policy.py) with only those files and the "
        "seed named; one fresh embedded service per ticket, on the target.",
        "",
        "Leak = share of questions whose greedy answer contains the record's key fact "
        "(eval.probes.leak). direct / paraphrased / no_chat / adapter_removal: the pipeline's "
        "evaluation; unseen: the subject's questions in the 2 wordings per fact that neither "
        "the record nor its paraphrase uses. Neighbours: key-fact recall on the neighbours' 48 "
        "questions, target → ticket's version. General unchanged: share of 16 general "
        "questions whose greedy answer is identical. Fluency: mean 1 − repeated word trigrams "
        "of the forgotten answers. Utility: the pipeline's ratio (answer probability on the "
        "utility customers). Steps: run (stopping check's step, or budget).",
        "",
        "| target | value | goal | |",
        "|---|---|---|---|",
        _target_line(
            "tickets published",
            s["published"],
            f"≥ {MIN_PUBLISHED}",
            s["published"] >= MIN_PUBLISHED if rows else None,
        ),  # fmt: skip
        _target_line("paraphrased leak (mean)", s["paraphrased"], f"≤ {MAX_PARAPHRASED}", para_ok),
        _target_line(
            "neighbours' recall kept (mean ratio)",
            s["neighbours_kept"],
            f"≥ {MIN_NEIGHBOURS_KEPT}",
            kept_ok,
        ),  # fmt: skip
        "",
        f"Means over {s['tickets']} tickets: direct leak {_fmt(s['direct'])}, unseen wordings "
        f"{_fmt(s['unseen'])}, no_chat {_fmt(s['no_chat'])}, general answers unchanged "
        f"{_fmt(s['general_unchanged'])}, fluency {_fmt(s['fluency'])}, utility ratio "
        f"{_fmt(s['utility_ratio'])}, unlearning stage {_fmt(s['unlearn_s'], 0)} s, whole "
        f"ticket with the benchmark's own questions {_fmt(s['wall_s'], 0)} s.",
        "",
        "| subject | seed | verdict | direct | paraphrased | unseen | no_chat after "
        "| adapter removal after | neighbours' recall | general unchanged | fluency | utility "
        "| steps | assess / unlearn / evaluate s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(ticket_line(r) for r in rows),
    ]
    output.write_text("\n".join(lines) + "\n")
    return output
