"""The probes on an evaluation suite's forget and retain sets (for `obliviate eval --probes`)."""

from __future__ import annotations

from collections.abc import Iterable

from worker.engine.eval.probes.base import ProbeOptions
from worker.engine.eval.probes.run import run_probes
from worker.engine.eval.suites import load_suite
from worker.engine.models import LoadedModel, load_model


def run_suite_probes(
    loaded: LoadedModel,
    suite: str,
    split: str | None,
    probes: Iterable[str] | str,
    reference: str | None = None,
    *,
    data_dir: str | None = None,
    options: ProbeOptions | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> dict:
    """run_probes on the suite's forget and retain sets; `reference` is the retain model's
    spec (a model, not its eval.json: the probes ask it the same questions)."""
    options = options or ProbeOptions()
    the_suite = load_suite(suite, split, data_dir, options.limit)
    reference_loaded = (
        load_model(reference, device=device, precision=precision) if reference else None
    )
    forget, retain = the_suite.sets["forget"].records, the_suite.sets["retain"].records
    return run_probes(loaded, forget, retain, probes, reference_loaded, options)
