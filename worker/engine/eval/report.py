"""eval.json: the summary, every per-example value, generations, hashes and timings.

The summary is flat (`name -> number or null`) so a policy can read it directly; every null
has a reason in `not_computed`. A retain model's eval.json serves as `reference` for Forget
Quality, privleak and the Reference MIA when it was made on the same suite, split and data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import cast

import numpy as np

from domain.records import DataError, hash_records
from worker.engine.eval import metrics

FORMAT = "obliviate-eval/1"
NEEDS_REFERENCE = "needs --reference: the eval.json of a retain model (never trained on forget)"
UTILITY_SETS = ("retain", "real_authors", "world_facts")


def load_reference(reference: str | Path | dict, suite) -> dict:
    """A retain model's evaluation, checked against the suite about to be run."""
    source = "inline" if isinstance(reference, dict) else str(reference)
    if isinstance(reference, dict):
        data = reference
    else:
        path = Path(reference)
        if not path.is_file():
            raise DataError(source, "reference eval.json not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataError(source, f"is not valid JSON ({error.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(source, f"is not an obliviate eval.json (format {FORMAT})", field="format")
    for key, expected in (("suite", suite.name), ("split", suite.split)):
        if data.get(key) != expected:
            raise DataError(source, f"was made on {data.get(key)!r}, not {expected!r}", field=key)
    for name in ("forget", "holdout"):
        ours = hash_records(suite.sets[name].records)
        if data["sets"][name]["data_hash"] != ours:
            raise DataError(
                source,
                f"its {name} set differs from this run's (other files or --limit)",
                field=f"sets.{name}.data_hash",
            )
    return {**data, "source": source}


def _mean(values) -> float:
    return float(np.mean(values))


def _set_summary(name: str, rows: dict) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"{name}_prob": _mean(rows["prob"])}
    if "normalised_prob" in rows:
        out[f"{name}_normalised_prob"] = _mean(rows["normalised_prob"])
    if "paraphrased_prob" in rows:
        out[f"{name}_paraphrased_prob"] = _mean(rows["paraphrased_prob"])
    if "truth_ratio" in rows:
        score = (
            metrics.truth_ratio_forget_score
            if name == "forget"
            else metrics.truth_ratio_utility_score
        )
        out[f"{name}_truth_ratio"] = score(rows["truth_ratio"])
    if "rouge_l_recall" in rows:
        out[f"{name}_rouge"] = _mean(rows["rouge_l_recall"])
        out[f"{name}_fluency"] = _mean(rows["fluency"])
    if "perplexity" in rows:
        known = [p for p in rows["perplexity"] if p is not None]
        out[f"{name}_perplexity"] = float(np.median(known)) if known else None
    if "key_fact_leaked" in rows:
        out[f"{name}_leak_rate"] = _mean(rows["key_fact_leaked"])
    if name == "forget":
        out["forget_extraction_strength"] = _mean(rows["extraction_strength"])
        out["forget_exact_memorisation"] = _mean(rows["exact_memorisation"])
    return out


def utility_parts(summary: dict) -> list[str]:
    """TOFU's 9 model-utility numbers (Prob on retain, normalised Prob elsewhere, ROUGE, TR)."""
    parts = []
    for name in UTILITY_SETS:
        prob = f"{name}_prob" if name == "retain" else f"{name}_normalised_prob"
        parts += [prob, f"{name}_rouge", f"{name}_truth_ratio"]
    return [p for p in parts if p in summary]


def summarise(result: dict, reference: dict | None) -> tuple[dict, dict]:
    summary: dict[str, float | None] = {}
    for name, block in result["sets"].items():
        summary |= _set_summary(name, block["per_example"])
    parts = utility_parts(summary)
    # Probabilities, ROUGE and truth ratios are always numbers: only a perplexity can be null.
    utility = cast(list[float], [summary[p] for p in parts])
    summary["model_utility"] = metrics.model_utility(utility)
    for attack, block in result["mia"].items():
        summary[f"mia_{attack}"] = block["auc"]
    not_computed = {}
    if reference is None:
        summary["forget_quality"] = summary["privleak"] = None
        for key in ("forget_quality", "privleak", "mia_reference"):
            not_computed[key] = NEEDS_REFERENCE
    else:
        summary["forget_quality"] = metrics.forget_quality(
            result["sets"]["forget"]["per_example"]["truth_ratio"],
            reference["sets"]["forget"]["per_example"]["truth_ratio"],
        )
        # MUSE / OpenUnlearning: privleak is taken on the Min-K (k=0.4) attack.
        summary["privleak"] = metrics.privleak(
            result["mia"]["min_k"]["auc"], reference["mia"]["min_k"]["auc"]
        )
    if len(parts) < 9:
        not_computed["model_utility_9"] = (
            f"this suite has no real-authors/world-facts sets; model_utility is the harmonic "
            f"mean of {', '.join(parts)}"
        )
    return summary, not_computed


def write_eval(path: str | Path, result: dict) -> Path:
    """Write atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False
    ) as handle:
        json.dump(result, handle, indent=1, ensure_ascii=False)
    Path(handle.name).replace(path)
    return path


ORIENTATION = {
    "forget_quality": "higher = closer to the retain model",
    "model_utility": "higher = more useful",
    "privleak": "0 ideal; <0 still leaks (target near -100), >0 over-unlearned",
    "mia_loss": "0.5 = forgotten, 1 = remembered",
}


def format_summary(result: dict) -> str:
    """A plain text table of the summary for the command line."""
    lines = [f"{result['suite']} {result['split']}  model {result['model']['spec']}"]
    for key, value in result["summary"].items():
        shown = "not computed" if value is None else f"{value:.4f}"
        note = ORIENTATION.get(key, "")
        lines.append(f"  {key:<32} {shown:>12}  {note}")
    total = result["timings"]["total"]
    lines.append(f"  {'time (s): wall / cpu':<32} {total['wall_s']:>12.1f}  {total['cpu_s']:.1f}")
    return "\n".join(lines)
