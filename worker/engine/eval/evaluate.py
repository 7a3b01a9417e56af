"""Evaluate one model on a suite: forgetting, utility, membership inference, fluency, cost.

Reads top to bottom: load the suite and the model, score every answer teacher-forced (cached
per model hash), generate greedy answers (cached too), turn both into per-example metrics, then
the summary. Nothing here fakes a number: what needs a retain model's evaluation is `None`
with a note until one is given as `reference`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from domain.records import hash_records
from worker.engine.eval import metrics
from worker.engine.eval.cache import ResultCache
from worker.engine.eval.fluency import fluency, generation_perplexity
from worker.engine.eval.mia import mia_block
from worker.engine.eval.report import FORMAT, load_reference, summarise
from worker.engine.eval.scoring import AnswerScore, ScoreRequest, score_requests
from worker.engine.eval.suites import EvalSet, load_suite
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel, load_model


@dataclass
class EvalOptions:
    data_dir: str | None = None
    limit: int | None = None  # first N records of every set: a quick look, not a benchmark
    max_new_tokens: int = 200
    generation_batch_size: int = 64
    token_budget: int = 2048  # padded tokens per teacher-forced batch
    chat: bool = True
    use_cache: bool = True
    cache_dir: str | None = None  # default cache_home()/eval
    fluency_model: str | None = None  # spec of the original model, for generation perplexity
    device: str | None = None
    precision: str | None = None


def _requests(eval_set: EvalSet, mia: bool) -> list[ScoreRequest]:
    """answer first, then the true answer of the truth ratio if different, then perturbed."""
    requests = []
    for record in eval_set.records:
        answers = [record.answer]
        if eval_set.true_field != "answer":
            answers.append(getattr(record, eval_set.true_field))
        answers.extend(record.perturbed_answer)
        stats = (mia,) + (False,) * (len(answers) - 1)  # Min-K++ only on the answer itself
        requests.append(ScoreRequest(record.question, tuple(answers), stats))
    return requests


def score_set(
    loaded: LoadedModel, eval_set: EvalSet, cache: ResultCache, mia: bool, **options
) -> tuple[list[list[AnswerScore]], int]:
    """Teacher-forced scores of every answer of every record, from the cache where possible."""
    requests = _requests(eval_set, mia)
    flat = [(i, j) for i, r in enumerate(requests) for j in range(len(r.answers))]
    keys = [
        (requests[i].question, requests[i].answers[j], str(requests[i].vocab_stats[j]))
        for i, j in flat
    ]

    def compute(positions: list[int]) -> list[dict]:
        # Score the missing answers, still grouped under their shared prompt.
        by_request: dict[int, list[int]] = {}
        for p in positions:
            by_request.setdefault(flat[p][0], []).append(flat[p][1])
        subset = [
            ScoreRequest(
                requests[i].question,
                tuple(requests[i].answers[j] for j in js),
                tuple(requests[i].vocab_stats[j] for j in js),
            )
            for i, js in by_request.items()
        ]
        scored = score_requests(loaded, subset, **options)
        return [s.to_dict() for group in scored for s in group]

    values, computed = cache.cached_map(keys, compute)
    result: list[list[AnswerScore]] = [[] for _ in requests]
    for (i, _), value in zip(flat, values, strict=True):
        result[i].append(AnswerScore(**value))
    return result, computed


def per_example(eval_set: EvalSet, scores: list[list[AnswerScore]], generations) -> dict:
    """Every metric of one set, one value per record."""
    true_index = 0 if eval_set.true_field == "answer" else 1
    rows: dict[str, list] = {"question": [r.question for r in eval_set.records]}
    answer = [s[0] for s in scores]
    rows["nll"] = [s.nll_mean for s in answer]
    rows["prob"] = [metrics.prob(s.nll_mean) for s in answer]
    if true_index == 1:
        rows["paraphrased_prob"] = [metrics.prob(s[1].nll_mean) for s in scores]
    if eval_set.name != "holdout":
        true_nll = [s[true_index].nll_mean for s in scores]
        wrong_nll = [[p.nll_mean for p in s[true_index + 1 :]] for s in scores]
        rows["truth_ratio"] = list(map(metrics.truth_ratio, true_nll, wrong_nll))
        if true_index == 0:  # real authors, world facts: TOFU reports the normalised prob
            rows["normalised_prob"] = list(map(metrics.normalised_prob, true_nll, wrong_nll))
    rows["extraction_strength"] = [metrics.extraction_strength(s.content_hits) for s in answer]
    rows["exact_memorisation"] = [metrics.exact_memorisation(s.content_hits) for s in answer]
    if generations is not None:
        rows["generation"] = generations
        rows["rouge_l_recall"] = [
            metrics.rouge_l_recall(g, r.answer)
            for g, r in zip(generations, eval_set.records, strict=True)
        ]
        rows["fluency"] = [fluency(g) for g in generations]
        if any(r.key_facts for r in eval_set.records):
            rows["key_fact_leaked"] = [
                metrics.key_fact_leaked(g, r.key_facts)
                for g, r in zip(generations, eval_set.records, strict=True)
            ]
    return rows


def generate_set(
    loaded: LoadedModel, eval_set: EvalSet, cache: ResultCache, options: EvalOptions
) -> tuple[list[str], int]:
    questions = [r.question for r in eval_set.records]

    def compute(positions: list[int]) -> list[str]:
        return generate_answers(
            loaded,
            [questions[p] for p in positions],
            max_new_tokens=options.max_new_tokens,
            batch_size=options.generation_batch_size,
            chat=options.chat,
        )

    return cache.cached_map([(q,) for q in questions], compute)


def add_perplexity(sets: dict, fluency_model: str, options: EvalOptions) -> None:
    """Each generation's perplexity under the original model (`fluency_model`, a spec)."""
    judge = load_model(fluency_model, device=options.device, precision=options.precision)
    for block in sets.values():
        rows = block["per_example"]
        if "generation" in rows:
            rows["perplexity"] = generation_perplexity(
                judge, rows["question"], rows["generation"], chat=options.chat
            )


class Stopwatch:
    """Wall and CPU seconds since creation; CPU time (all threads) is the number that stays
    meaningful when other jobs share the cores."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {
            "wall_s": round(time.perf_counter() - self.wall, 3),
            "cpu_s": round(time.process_time() - self.cpu, 3),
        }


def gate_block(loaded: LoadedModel, suite, options: EvalOptions) -> dict | None:
    """GRUN models: gate values on every set's questions (and the paraphrased forget ones);
    real authors and world facts are the unrelated general questions. None without GRUN."""
    stack = getattr(loaded.model, "grun_stack", None)
    if stack is None or not stack.requests:
        return None
    from worker.engine.adapters.grun_gates import gate_report

    sets = {name: [r.question for r in s.records] for name, s in suite.sets.items()}
    if "forget" in suite.sets:
        forget = suite.sets["forget"].records
        sets["paraphrased_forget"] = [
            r.paraphrased_question for r in forget if r.paraphrased_question
        ]
    return gate_report(
        loaded.model, loaded.tokenizer, sets, chat=options.chat, autocast=loaded.autocast
    )


def _load(model: LoadedModel | str, options: EvalOptions) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    return load_model(model, device=options.device, precision=options.precision)


def evaluate(
    model: LoadedModel | str,
    suite: str = "tofu",
    split: str | None = None,
    reference: str | Path | dict | None = None,
    options: EvalOptions | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate a model (a spec or an already loaded one) and return the eval.json content.

    reference: a retain model's eval.json (path or loaded dict) on the same suite and split;
    it enables Forget Quality, privleak and the Reference MIA. on_progress gets one line per
    step (which set, scoring or generating).
    """
    options = options or EvalOptions()
    report = on_progress or (lambda message: None)
    total = Stopwatch()
    the_suite = load_suite(suite, split, options.data_dir, options.limit)
    ref = load_reference(reference, the_suite) if reference is not None else None
    loaded = _load(model, options)
    timings: dict[str, dict] = {"load": total.read()}
    dtype = str(loaded.autocast_dtype)
    settings = {"chat": options.chat, "dtype": dtype}
    score_cache = ResultCache(
        loaded.model_hash, "scores", settings, options.use_cache, options.cache_dir
    )
    gen_cache = ResultCache(
        loaded.model_hash,
        "generations",
        settings | {"max_new_tokens": options.max_new_tokens},
        options.use_cache,
        options.cache_dir,
    )
    sets, all_scores = {}, {}
    for name, eval_set in the_suite.sets.items():
        report(f"{name}: scoring the answers of {len(eval_set.records)} questions")
        clock = Stopwatch()
        mia = name in ("forget", "holdout")
        scores, scored = score_set(
            loaded, eval_set, score_cache, mia, chat=options.chat, token_budget=options.token_budget
        )
        timings[name] = {"scoring": clock.read(), "answers_scored": scored}
        generations = None
        if eval_set.generate:
            report(f"{name}: generating {len(eval_set.records)} greedy answers")
            clock = Stopwatch()
            generations, generated = generate_set(loaded, eval_set, gen_cache, options)
            timings[name] |= {"generation": clock.read(), "generated": generated}
        all_scores[name] = scores
        sets[name] = {
            "source": eval_set.source,
            "data_hash": hash_records(eval_set.records),
            "n": len(eval_set.records),
            "per_example": per_example(eval_set, scores, generations),
        }
    if options.fluency_model:
        clock = Stopwatch()
        add_perplexity(sets, options.fluency_model, options)
        timings["fluency_model"] = clock.read()
    clock = Stopwatch()
    gates = gate_block(loaded, the_suite, options)
    if gates is not None:
        timings["gates"] = clock.read()
    clock = Stopwatch()
    attacks = mia_block(the_suite, all_scores, ref)
    timings["mia"] = clock.read()
    timings["total"] = total.read()
    result = {
        "format": FORMAT,
        "suite": the_suite.name,
        "split": the_suite.split,
        "model": {"spec": loaded.spec, "hash": loaded.model_hash, "autocast": dtype},
        "reference": None if ref is None else {"model": ref["model"], "source": ref["source"]},
        "options": asdict(options),
        "sets": sets,
        "mia": attacks,
        "gates": gates,
        "timings": timings,
    }
    result["summary"], result["not_computed"] = summarise(result, ref)
    return result
