"""Robustness probes: does forgotten data come back when asked another way or attacked?

    from worker.engine.eval.probes import run_probes
    result = run_probes(loaded, forget, retain, probes=["paraphrased_question", "best_of_n"],
                        reference_loaded=retain_model)

Importing this package registers every probe in `PROBES` (one module per family).
"""

from worker.engine.eval.probes import (  # noqa: F401  (registers the probes)
    adapters,
    choice,
    prompts,
    quantize,
    relearn,
    sampling,
)
from worker.engine.eval.probes.base import (
    PROBES,
    ProbeError,
    ProbeOptions,
    ProbeSkipped,
    resolve_probes,
)
from worker.engine.eval.probes.leak import ROUGE_THRESHOLD, RULE, judge
from worker.engine.eval.probes.run import run_probes, summary_row
from worker.engine.eval.probes.suite import run_suite_probes

__all__ = [
    "PROBES",
    "ROUGE_THRESHOLD",
    "RULE",
    "ProbeError",
    "ProbeOptions",
    "ProbeSkipped",
    "judge",
    "resolve_probes",
    "run_probes",
    "run_suite_probes",
    "summary_row",
]
