"""Leak rates of a prompt format on a set of records, for the model and its baseline.

A `PromptBuilder` turns a record into the `Case` the model sees, or None when the probe does
not apply to that record (no paraphrased question, the key fact inside the given words...).
Results of one run are remembered by (role, set, builder, samples): the adapter-removal probe's
baseline is the direct probe's, and nothing is generated twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from domain.records import QARecord
from worker.engine.eval.probes.base import ProbeOptions
from worker.engine.eval.probes.generation import Case, complete
from worker.engine.eval.probes.leak import judge
from worker.engine.models import LoadedModel

PromptBuilder = Callable[[object, QARecord, ProbeOptions], Case | None]


@dataclass
class ProbeContext:
    loaded: LoadedModel  # the unlearned model; probes never change its weights
    reference: LoadedModel | None  # the retain model (never trained on the forget set)
    sets: dict[str, list[QARecord]]  # "forget" and "retain"
    options: ProbeOptions
    memo: dict = field(default_factory=dict)

    def measure(
        self,
        role: str,
        loaded: LoadedModel,
        set_name: str,
        build: PromptBuilder,
        samples: int = 1,
        records: Sequence[QARecord] | None = None,
    ) -> dict:
        """Leak block of `build` on a set (or on `records`, a named part of it), remembered."""
        key = (role, set_name, build, samples)
        if key not in self.memo:
            chosen = self.sets[set_name] if records is None else records
            self.memo[key] = leak_block(loaded, chosen, build, self.options, samples)
        return self.memo[key]

    def leak_blocks(
        self,
        build: PromptBuilder,
        *,
        samples: int = 1,
        model: LoadedModel | None = None,
        reference: LoadedModel | None = None,
        role: str = "",
    ) -> dict:
        """The model on forget and retain, the reference on forget. `model`/`reference`
        replace the context's (a quantized copy...), `role` names that variant for the memo."""
        model = model or self.loaded
        reference = reference or self.reference
        blocks = {
            "model": {
                name: self.measure(f"model{role}", model, name, build, samples)
                for name in self.sets
            },
            "reference": None,
        }
        if reference is not None:
            blocks["reference"] = {
                "forget": self.measure(f"reference{role}", reference, "forget", build, samples)
            }
        return blocks


def leak_block(
    loaded: LoadedModel,
    records: Sequence[QARecord],
    build: PromptBuilder,
    options: ProbeOptions,
    samples: int = 1,
) -> dict:
    """Leak rate with per-example values. samples > 1: sampled at options.temperature, and a
    record leaks when any of its samples leaks."""
    cases = [build(loaded.tokenizer, r, options) for r in records]
    used = [(i, c) for i, c in enumerate(cases) if c is not None]
    repeated = [c for _, c in used for _ in range(samples)]
    outputs = complete(
        loaded,
        repeated,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        do_sample=samples > 1,
        temperature=options.temperature,
        seed=options.seed,
    )
    per_example = []
    for position, (index, case) in enumerate(used):
        record = records[index]
        group = outputs[position * samples : (position + 1) * samples]
        verdicts = [judge(record, case.judged_text(o), options.rouge_threshold) for o in group]
        first_leak = next((v for v in verdicts if v.leaked), verdicts[0])
        row = {"index": index, "question": record.question, **first_leak.to_dict()}
        if case.given:
            row["given"] = case.given
        if samples == 1:
            row["output"] = group[0]
        else:
            row["outputs"] = group
            row["leaked_samples"] = sum(v.leaked for v in verdicts)
        per_example.append(row)
    return summarise(per_example, len(records))


def summarise(per_example: list[dict], total: int) -> dict:
    leaked = sum(row["leaked"] for row in per_example)
    n = len(per_example)
    return {
        "n": n,
        "not_applicable": total - n,
        "leaked": leaked,
        "leak_rate": leaked / n if n else None,
        "per_example": per_example,
    }
