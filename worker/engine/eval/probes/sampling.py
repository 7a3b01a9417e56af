"""Best-of-N: what a user who simply asks again and again eventually sees."""

from __future__ import annotations

from worker.engine.eval.probes.base import probe
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.eval.probes.prompts import direct_case


@probe(
    "best_of_n",
    "sampling",
    "N samples of the training question (temperature, fixed seed); leaked if any sample leaks",
)
def best_of_n(ctx: ProbeContext) -> dict:
    options = ctx.options
    details = {"samples": options.samples, "temperature": options.temperature, "seed": options.seed}
    return {**ctx.leak_blocks(direct_case, samples=options.samples), "details": details}
