"""The engine stages the pipeline calls, behind a small protocol so tests can swap in a fast
fake (settings.engine_runner names the class). Results hold numbers and hashes, never the
records; of the model's answers only a few, with every personal value masked
(`domain.redaction.mask_personal`), so a report can show what forgetting looks like.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Protocol

from domain.progress import Progress
from domain.records import QARecord, Record, TextRecord, load_records
from domain.redaction import answer_examples, paired_examples
from worker.engine.eval import metrics
from worker.engine.eval.general import own_answers
from worker.engine.eval.probes.adapters import adapter_kind, adapter_off
from worker.engine.eval.scoring import ScoreRequest, score_requests, score_texts
from worker.engine.models import LoadedModel, load_model, saved_model_hash
from worker.engine.objectives import LossSettings
from worker.engine.stopping import TEXT_PROBE, ask_probes, not_applicable
from worker.engine.unlearn import UnlearnConfig, record_key, unlearn
from worker.policy import ModelPolicy, require_file


class Runner(Protocol):
    def assess(self, spec: str, records: Sequence[Record], policy: ModelPolicy) -> dict:
        """How much of `records` the model `spec` reproduces now."""

    def unlearn(
        self,
        spec: str,
        records: Sequence[Record],
        policy: ModelPolicy,
        options: dict,
        output: Path,
        on_progress: Callable[[Progress], None],
        should_stop: Callable[[], bool],
    ) -> dict:
        """Write the unlearned model (or module) to `output`; return method, adapter, cost."""

    def evaluate(
        self, spec: str, records: Sequence[Record], policy: ModelPolicy, assessment: dict, run: dict
    ) -> dict:
        """Measure the new model `spec` the way `assess` measured its parent, and compare."""


def answer_probs(loaded: LoadedModel, records: Sequence[Record]) -> list[float]:
    """Per record: exp(−mean NLL) of its answer after its question, or of a text record's
    tokens: the TOFU `Prob`, through the evaluation's own scoring."""
    probs = [0.0] * len(records)  # a one-token text has nothing to predict
    qa = [(i, r) for i, r in enumerate(records) if isinstance(r, QARecord)]
    text = [(i, r) for i, r in enumerate(records) if isinstance(r, TextRecord)]
    requests = [ScoreRequest(r.question, (r.answer,)) for _, r in qa]
    for (i, _), scores in zip(qa, score_requests(loaded, requests), strict=True):
        probs[i] = metrics.prob(scores[0].nll_mean)
    passages = score_texts(loaded, [r.text for _, r in text])
    for (i, _), logps in zip(text, passages, strict=True):
        probs[i] = math.exp(fmean(logps)) if logps else 0.0
    return probs


def leak_rates(loaded: LoadedModel, records: Sequence[Record], max_new_tokens: int) -> dict:
    """Share of records that leak, per probe: QA records asked their question as filed and its
    paraphrase where the record has one, text records continued from their opening words
    (`verbatim`, with MUSE's VerbMem score beside it), each judged by the evaluation's one rule
    (`leak`: key facts where the record has them, else ROUGE-L against the truth)."""
    asked = ask_probes(loaded, records, max_new_tokens)
    result = {
        "leak_rate": {name: fmean(probe.leaked) for name, probe in asked.items()},
        "probed": {name: len(probe.leaked) for name, probe in asked.items()},
        "not_applicable": not_applicable(records),
    }
    if TEXT_PROBE in asked:
        result["verbatim_score"] = fmean(asked[TEXT_PROBE].scores or [])
    if "direct" in asked:
        result["examples"] = answer_examples(records, asked["direct"].said)
    return result


def _without(records: list[Record], forget: Sequence[Record]) -> list[Record]:
    """A model's retain or utility file usually holds every customer; the records a ticket
    forgets must be neither kept nor counted as utility."""
    forgotten = {record_key(r) for r in forget}
    return [r for r in records if record_key(r) not in forgotten]


def _retain_file(policy: ModelPolicy, forget: Sequence[Record]) -> list[Record]:
    path = require_file(policy, policy.unlearning.retain_data, "retain_data")
    return _without(load_records(path), forget) if path else []


def _held_out(policy: ModelPolicy, count: int) -> int:
    """How many retain records are kept out of training to measure utility when the policy
    names no utility data: a ratio measured on records the retain loss trained on reads 1.00
    whatever the run did (issue 19). At most a quarter, so the retain term keeps most."""
    if policy.evaluation.utility_data is not None:
        return 0
    return min(policy.evaluation.utility_limit, count // 4)


def retain_records(policy: ModelPolicy, forget: Sequence[Record]) -> list[Record]:
    """The retain data the run trains on: the retain file without the ticket's records and
    without the ones held out for utility."""
    records = _retain_file(policy, forget)
    return records[: len(records) - _held_out(policy, len(records))]


def utility_records(policy: ModelPolicy, forget: Sequence[Record]) -> list[Record]:
    """Utility data no run trained on: the policy's utility file, else the retain records held
    out of training; empty when the model has neither (the general questions then serve)."""
    path = require_file(policy, policy.evaluation.utility_data, "utility_data")
    if path is not None:
        return _without(load_records(path), forget)[: policy.evaluation.utility_limit]
    records = _retain_file(policy, forget)
    return records[len(records) - _held_out(policy, len(records)) :]


def utility_set(
    loaded: LoadedModel, policy: ModelPolicy, forget: Sequence[Record], assessment: dict | None
) -> tuple[str, Sequence[Record]]:
    """Where utility is measured and on which records. Without utility or retain data, on the
    general questions with the parent model's own answers, recorded at assessment so the new
    version is scored on the same ones."""
    if records := utility_records(policy, forget):
        source = "utility_data" if policy.evaluation.utility_data else "retain_data (held out)"
        return source, records
    if assessment is not None:
        return "general questions", [QARecord(**r) for r in assessment["general_answers"]]
    return "general questions", own_answers(loaded, policy.evaluation.max_new_tokens)


def measure(
    loaded: LoadedModel,
    records: Sequence[Record],
    policy: ModelPolicy,
    assessment: dict | None = None,
) -> dict:
    """Leak rates, forget and utility answer probabilities; `assessment`: the parent's
    measurement this one is compared with (None: this is the parent's)."""
    started = time.perf_counter()
    source, utility = utility_set(loaded, policy, records, assessment)
    result = leak_rates(loaded, records, policy.evaluation.max_new_tokens)
    result["forget_prob"] = fmean(answer_probs(loaded, records))
    result["utility_prob"] = fmean(answer_probs(loaded, utility)) if utility else None
    result["utility_source"] = source
    if source == "general questions":
        result["general_answers"] = [r.to_dict() for r in utility]
    result["model_hash"] = loaded.model_hash
    result["wall_time_s"] = time.perf_counter() - started
    return result


def passages_without_adapter(loaded: LoadedModel, texts: Sequence[TextRecord]) -> dict:
    """`adapter_removal` for passages: their verbatim leak rate with LoRA or GRUN switched off
    (what whoever strips the module from the base weights gets back)."""
    started = time.perf_counter()
    kind = adapter_kind(loaded.model)
    if kind is None:
        reason = "not applicable: no LoRA or GRUN adapter (full fine-tuning)"
        return {"status": "skipped", "reason": reason, "metric": "leak_rate"}
    with adapter_off(loaded.model, kind):
        asked = ask_probes(loaded, texts, max_new_tokens=0, names={TEXT_PROBE})
    leaked = asked[TEXT_PROBE].leaked if TEXT_PROBE in asked else []
    return {
        "status": "ok",
        "metric": "leak_rate",
        "forget": fmean(leaked) if leaked else None,
        "retain": None,  # passages come without neighbours to compare
        "reference_forget": None,
        "seconds": time.perf_counter() - started,
    }


def run_robustness_probes(
    loaded: LoadedModel, records: Sequence[Record], policy: ModelPolicy
) -> dict:
    """The policy's probes on the new model: per probe its status and leak rates (numbers only).
    The probe suite asks questions; a ticket of passages gets `adapter_removal` on them."""
    forget = [r for r in records if isinstance(r, QARecord)]
    retain = [r for r in utility_records(policy, records) if isinstance(r, QARecord)]
    texts = [r for r in records if isinstance(r, TextRecord)]
    names, rows = list(policy.evaluation.probes), {}
    if texts and not forget and "adapter_removal" in names:
        names.remove("adapter_removal")
        rows["adapter_removal"] = passages_without_adapter(loaded, texts)
    if not names:
        return rows
    if not forget or not retain:
        reason = "the probes need QA records in the ticket and in the utility set"
        return {**{name: {"status": "skipped", "reason": reason} for name in names}, **rows}
    from worker.engine.eval.probes import ProbeOptions, run_probes

    options = ProbeOptions(
        limit=policy.evaluation.utility_limit, max_new_tokens=policy.evaluation.max_new_tokens
    )
    result = run_probes(loaded, forget, retain, names, options=options)
    return result["summary"]


class EngineRunner:
    """The real engine: generation for the leak probes, teacher-forced probabilities for forget
    and utility, `worker.engine.unlearn` for the change itself.

    One model load per ticket: the model a stage leaves in memory is kept (one at a time) for
    the next stage that asks for the same spec: assess's model is the one unlearning trains,
    and the trained model is the saved version the evaluation measures (its spec and hash are
    those `load_model` gives the written folder)."""

    def __init__(self) -> None:
        self._kept: LoadedModel | None = None

    def _load(self, spec: str) -> LoadedModel:
        kept, self._kept = self._kept, None
        return kept if kept is not None and kept.spec == spec else load_model(spec)

    def _keep(self, loaded: LoadedModel) -> None:
        loaded.model.eval()
        self._kept = loaded

    def assess(self, spec: str, records: Sequence[Record], policy: ModelPolicy) -> dict:
        loaded = self._load(spec)
        result = measure(loaded, records, policy)
        self._keep(loaded)
        return result

    def unlearn(self, spec, records, policy, options, output, on_progress, should_stop) -> dict:
        plan = policy.unlearning
        retain = retain_records(policy, records)
        loss = dict(plan.loss)
        if not retain:
            # No retain data (e.g. a model without a policy file): the retain term is off; GRUN's
            # gate still learns to stay shut from its built-in general questions, and utility is
            # measured on other general questions (`utility_set`).
            loss["alpha"] = 0.0
        cfg = UnlearnConfig(
            output=str(output),
            model=spec,
            method=options.get("method", plan.method),
            adapter=options.get("adapter", plan.adapter),
            adapter_options=dict(plan.adapter_options),
            steps=options.get("steps", plan.steps),  # an operator's re-run may raise it
            lr=plan.lr,
            batch_size=plan.batch_size,
            seed=plan.seed,
            loss=LossSettings(**loss),
            # Unlearn until it is gone: stop once the probes the publish rule limits pass.
            stop_leak_rate=dict(policy.publish.max_leak_rate),
            stop_neighbours_kept=policy.publish.min_utility_ratio,
            check_every=plan.check_every,
            overwrite=True,  # a retried attempt's leftovers are ours to replace
        )
        loaded = self._load(spec)
        info = unlearn(
            cfg, forget=records, retain=retain or None, on_progress=on_progress,
            should_stop=should_stop,
            loaded=loaded,
        )  # fmt: skip
        loaded.spec = str(output)  # what the pipeline names the version to evaluate
        loaded.model_hash = saved_model_hash(Path(output), loaded.model_hash)
        self._keep(loaded)
        return {
            "method": cfg.method,
            "adapter": cfg.adapter,
            "steps": info["cost"]["steps"],
            "budget_steps": info["config"]["steps"],
            "stopping": info["stopping"],
            "cost": info["cost"],
        }

    def evaluate(self, spec, records, policy, assessment, run) -> dict:
        loaded = self._load(spec)
        after = measure(loaded, records, policy, assessment)
        robustness = run_robustness_probes(loaded, records, policy)
        probe_leaks = {
            name: row["forget"]
            for name, row in robustness.items()
            if row.get("status") == "ok" and row.get("metric") == "leak_rate"
        }
        before_utility, after_utility = assessment.get("utility_prob"), after["utility_prob"]
        ratio = (
            after_utility / before_utility if before_utility and after_utility is not None else None
        )
        evaluation = {
            "leak_rate": {**probe_leaks, **after["leak_rate"]},
            "probed": after["probed"],
            "not_applicable": after["not_applicable"],
            # A ticket about data the model never gave out says so (issue 17): its leak rates
            # after cannot show anything forgotten.
            "reproduced_before": any(rate > 0 for rate in assessment["leak_rate"].values()),
            "forget_prob": {"before": assessment["forget_prob"], "after": after["forget_prob"]},
            "utility": {
                "before": before_utility,
                "after": after_utility,
                "ratio": ratio,
                "source": after["utility_source"],
            },  # fmt: skip
            # Honest caveat (docs/engine.md, GRUN): with an adapter the base weights still hold
            # the data; the adapter_removal probe measures what whoever strips the module gets
            # back.
            "robustness": robustness,
            "cost": {**run["cost"], "evaluate_s": after["wall_time_s"]},
            # The unlearning curve: leak rate per probe at each stopping-rule check.
            "stopping": run.get("stopping"),
            "examples": paired_examples(assessment.get("examples", []), after.get("examples", [])),
        }
        if "verbatim_score" in after:
            evaluation["verbatim_score"] = {
                "before": assessment.get("verbatim_score"),
                "after": after["verbatim_score"],
            }
        return evaluation
