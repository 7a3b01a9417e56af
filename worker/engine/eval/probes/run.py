"""run_probes: every chosen probe on the model and its baseline, timed, in one dict."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict

from domain.records import QARecord
from worker.engine.eval.probes.base import ProbeError, ProbeOptions, ProbeSkipped, resolve_probes
from worker.engine.eval.probes.leak import RULE
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.models import LoadedModel

FORMAT = "obliviate-probes/1"


def check_records(records: Sequence, set_name: str) -> list[QARecord]:
    if not records:
        raise ProbeError(f"{set_name}: holds no records; the probes need QA records")
    for index, record in enumerate(records):
        if not isinstance(record, QARecord):
            raise ProbeError(
                f"{set_name}: record {index}: the robustness probes need QA records "
                "(question, answer), not plain text"
            )
    return list(records)


def _model_info(loaded: LoadedModel | None) -> dict | None:
    return None if loaded is None else {"spec": loaded.spec, "hash": loaded.model_hash}


def summary_row(result: dict) -> dict:
    """The headline numbers of one probe: leak (or gate evasion) rates and the time it took."""
    key = "evasion_rate" if result["name"] == "gate_evasion" else "leak_rate"
    row = {"status": result["status"], "seconds": result["seconds"], "metric": key}
    if result["status"] != "ok":
        row["reason"] = result["reason"]
    else:
        for set_name, block in result["model"].items():
            row[set_name] = block[key]
        reference = result.get("reference") or {}
        row["reference_forget"] = reference["forget"][key] if "forget" in reference else None
    return row


def run_probes(
    loaded: LoadedModel,
    forget: Sequence[QARecord],
    retain: Sequence[QARecord],
    probes: Iterable[str] | str | None = None,
    reference_loaded: LoadedModel | None = None,
    options: ProbeOptions | None = None,
) -> dict:
    """Run the named probes (None or "all": every one) and return the probes block of eval.json.

    Per probe: leak rates with per-example values for the model on forget and retain, for the
    reference (retain) model on forget when given, the probe's details, and its seconds. A probe
    that does not apply (adapter removal on a fully fine-tuned model...) is reported "skipped"
    with the reason. The models are never modified: attacks work on copies.
    """
    chosen = resolve_probes(probes)
    options = options or ProbeOptions()
    sets = {
        "forget": check_records(forget, "forget")[: options.limit],
        "retain": check_records(retain, "retain")[: options.limit],
    }
    ctx = ProbeContext(loaded, reference_loaded, sets, options)
    started = time.perf_counter()
    results = {}
    for item in chosen:
        clock = time.perf_counter()
        result: dict = {"name": item.name, "family": item.family, "description": item.description}
        try:
            result |= {"status": "ok", "reason": None, **item.run(ctx)}
        except ProbeSkipped as skipped:
            result |= {"status": "skipped", "reason": str(skipped)}
        result["seconds"] = time.perf_counter() - clock
        results[item.name] = result
    return {
        "format": FORMAT,
        "leak_rule": RULE,
        "model": _model_info(loaded),
        "reference": _model_info(reference_loaded),
        "options": asdict(options),
        "n": {name: len(records) for name, records in sets.items()},
        "probes": results,
        "summary": {name: summary_row(result) for name, result in results.items()},
        "seconds": time.perf_counter() - started,
    }
