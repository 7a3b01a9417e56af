"""The TOFU-mini table (markdown) and the utility-vs-forget-quality plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; there is no screen on a worker
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = [
    ("forget ROUGE", "forget_rouge", "{:.3f}"),
    ("forget TR", "forget_truth_ratio", "{:.3f}"),
    ("Forget Quality", "forget_quality", "{:.2e}"),
    ("Model Utility", "model_utility", "{:.3f}"),
    ("MU / target", "utility_ratio", "{:.2f}"),
    ("forget fluency", "forget_fluency", "{:.2f}"),
    ("privleak", "privleak", "{:.1f}"),
]


def fmt(value, pattern: str) -> str:
    return "n/c" if value is None else pattern.format(value)


def utility_ratio(row: dict, target: dict) -> float | None:
    """A row's Model Utility over the target's (None when the target's is 0)."""
    base = target["summary"]["model_utility"]
    return row["summary"]["model_utility"] / base if base else None


def training_seconds(row: dict) -> float:
    """A model's training wall time: a cell's whole budget, without its per-epoch checks."""
    selection = row.get("selection") or {}
    return row["cost"]["wall_time_s"] - selection.get("seconds", 0.0)


def picked_epoch(row: dict) -> str:
    """ "picked/trained" epochs of a cell evaluated per epoch; "-" for one that was not."""
    selection = row.get("selection")
    if not selection:
        return "-"
    # The first check comes after `check_epochs` epochs (before: read as one epoch's steps, so
    # a cell checked every 2 epochs named half its picked epoch).
    steps_per_epoch = selection["checks"][0]["step"] // row["cell"].get("check_epochs", 1)
    return f"{selection['picked_step'] // steps_per_epoch}/{row['cell']['epochs']}"


def table_rows(rows: list[dict], target: dict, retain: dict, retrain_s: float) -> list[str]:
    """One line per model: the target and retain fixtures first, then the cells."""
    header = ["model", *(c[0] for c in COLUMNS), "epoch", "wall time (s)", "peak mem (MB)",
              "trainable params", "cost % of retrain"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in [target, retain, *rows]:
        summary = dict(row["summary"])
        summary["utility_ratio"] = utility_ratio(row, target)
        cells = [row["name"], *(fmt(summary.get(key), p) for _, key, p in COLUMNS)]
        cells.append(picked_epoch(row) if "cell" in row else "-")
        if cost := row.get("cost"):
            seconds = training_seconds(row)
            cells += [
                f"{seconds:.0f}",
                fmt(cost["peak_memory_mb"], "{:.0f}"),
                f"{cost['trainable_parameters']:,}",
                f"{100 * seconds / retrain_s:.1f}",
            ]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def epoch_rows(rows: list[dict]) -> list[str]:
    """Each per-epoch cell's curve: Forget Quality and retain utility kept after every epoch."""
    lines = []
    for row in rows:
        if selection := row.get("selection"):
            points = ", ".join(
                f"{c['forget_quality']:.1e} / {c['retain_kept']:.2f}" for c in selection["checks"]
            )
            lines.append(f"- {row['name']} (FQ / retain kept, epoch 1 on): {points}; the checks "
                         f"took {selection['seconds']:.0f} s")  # fmt: skip
    return lines


def probe_rows(rows: list[dict], names: list[str]) -> list[str]:
    """Forget leak rate per probe, in the order given (retain in brackets); gate evasion is the
    share of forget questions whose gate stayed shut."""
    lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        cells = []
        for name in names:
            probe = row["probes"][name]
            if probe["status"] != "ok":
                cells.append("n/a")
            else:
                cells.append(f"{probe['forget']:.2f} ({probe['retain']:.2f})")
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return lines


MIN_UTILITY_RATIO = 0.95  # issue 19: Model Utility >= 0.95x the target's
MIN_FORGET_QUALITY = 0.05


def target_lines(rows: list[dict], target: dict, retrain_s: float) -> list[str]:
    """The issues' GRUN targets (19: forgetting and utility in one cell; 14: cost), each checked
    against this split's rows."""
    grun = [r for r in rows if r["cell"]["adapter"] == "grun"]
    if not grun:
        return ["No GRUN cell ran: the GRUN targets are not checked."]
    full = {r["cell"]["method"]: r for r in rows if r["cell"]["adapter"] == "full"}

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = []
    for r in grun:
        ratio, fq = utility_ratio(r, target), r["summary"]["forget_quality"]
        both = ratio is not None and ratio >= MIN_UTILITY_RATIO and (fq or 0) >= MIN_FORGET_QUALITY
        lines.append(f"- {r['name']}: Forget Quality {fmt(fq, '{:.2e}')} (aim ≥ "
                     f"{MIN_FORGET_QUALITY}) with Model Utility {fmt(ratio, '{:.2f}')} × target "
                     f"(aim ≥ {MIN_UTILITY_RATIO}): {verdict(both)}")  # fmt: skip
        if r["cell"]["method"] in full:
            share = training_seconds(r) / training_seconds(full[r["cell"]["method"]])
            lines.append(f"- {r['name']}: wall time {share:.2f} × {r['cell']['method']}-full "
                         f"(aim ≤ 0.25): {verdict(share <= 0.25)}")  # fmt: skip
    cheapest = min(grun, key=training_seconds)
    cost = training_seconds(cheapest) / retrain_s
    lines.append(f"- cheapest GRUN cell, {cheapest['name']}, costs {cost:.1%} of retraining "
                 f"(aim ≤ 10%): {verdict(cost <= 0.10)}")  # fmt: skip
    return lines


def plot(rows: list[dict], target: dict, retain: dict, path: Path) -> None:
    """Model Utility against Forget Quality (log scale), one point per cell."""
    figure, axes = plt.subplots(figsize=(7, 5))
    markers = {"full": "o", "lora": "s", "grun": "^"}
    for row in rows:
        fq = row["summary"]["forget_quality"]
        adapter = row["cell"]["adapter"]
        axes.scatter(fq, row["summary"]["model_utility"], marker=markers.get(adapter, "o"))
        axes.annotate(row["name"], (fq, row["summary"]["model_utility"]), fontsize=7)
    for label, row, colour in (("target", target, "black"), ("retain", retain, "green")):
        fq = row["summary"]["forget_quality"]
        axes.scatter(fq, row["summary"]["model_utility"], color=colour, marker="*", s=150)
        axes.annotate(label, (fq, row["summary"]["model_utility"]), fontsize=8)
    # The aims: Forget Quality 0.05 with 0.95 of the target's utility.
    axes.axvline(MIN_FORGET_QUALITY, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(MIN_UTILITY_RATIO * target["summary"]["model_utility"], color="grey",
                 linestyle=":", linewidth=0.8)  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("Forget Quality (KS p-value vs retain model, log)")
    axes.set_ylabel("Model Utility")
    axes.set_title("TOFU-mini: utility vs forgetting")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
