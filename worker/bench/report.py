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


def table_rows(rows: list[dict], target: dict, retain: dict, retrain_s: float) -> list[str]:
    """One line per model: the target and retain fixtures first, then the cells."""
    header = ["model", *(c[0] for c in COLUMNS), "wall time (s)", "peak mem (MB)",
              "trainable params", "cost % of retrain"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in [target, retain, *rows]:
        summary = dict(row["summary"])
        summary["utility_ratio"] = utility_ratio(row, target)
        cells = [row["name"], *(fmt(summary.get(key), p) for _, key, p in COLUMNS)]
        if cost := row.get("cost"):
            cells += [
                f"{cost['wall_time_s']:.0f}",
                fmt(cost["peak_memory_mb"], "{:.0f}"),
                f"{cost['trainable_parameters']:,}",
                f"{100 * cost['wall_time_s'] / retrain_s:.1f}",
            ]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
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


def target_lines(rows: list[dict], target: dict, retrain_s: float) -> list[str]:
    """The issue's four GRUN targets, each checked against this split's rows."""
    grun = [r for r in rows if r["cell"]["adapter"] == "grun"]
    if not grun:
        return ["No GRUN cell ran: the GRUN targets are not checked."]
    full = {r["cell"]["method"]: r for r in rows if r["cell"]["adapter"] == "full"}
    best = max(grun, key=lambda r: r["summary"]["forget_quality"] or 0.0)

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = []
    for r in grun:
        ratio = utility_ratio(r, target)
        lines.append(f"- {r['name']}: Model Utility {fmt(ratio, '{:.2f}')} × target (aim ≥ 0.97): "
                     f"{verdict(ratio is not None and ratio >= 0.97)}")  # fmt: skip
        if r["cell"]["method"] in full:
            share = r["cost"]["wall_time_s"] / full[r["cell"]["method"]]["cost"]["wall_time_s"]
            lines.append(f"- {r['name']}: wall time {share:.2f} × {r['cell']['method']}-full "
                         f"(aim ≤ 0.25): {verdict(share <= 0.25)}")  # fmt: skip
    fq = best["summary"]["forget_quality"]
    cost = best["cost"]["wall_time_s"] / retrain_s
    lines += [
        f"- best GRUN cell by Forget Quality, {best['name']}: {fmt(fq, '{:.2e}')} (aim ≥ 0.05): "
        f"{verdict(fq is not None and fq >= 0.05)}",
        f"- {best['name']} costs {cost:.1%} of retraining (aim ≤ 10%): {verdict(cost <= 0.10)}",
    ]
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
    # The aims: Forget Quality 0.05, and 0.97 of the target's utility.
    axes.axvline(0.05, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(0.97 * target["summary"]["model_utility"], color="grey", linestyle=":",
                 linewidth=0.8)  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("Forget Quality (KS p-value vs retain model, log)")
    axes.set_ylabel("Model Utility")
    axes.set_title("TOFU-mini: utility vs forgetting")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
