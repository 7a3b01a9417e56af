"""`obliviate eval --suite corpus`: knowledge and text the model had before any fine-tuning
(issue 17), measured the way MUSE and WMDP measure it.

A corpus folder holds, as JSON Lines or a JSON array (`domain.records`):

  forget.jsonl     passages to forget (text records)                     -> verbatim
  knowledge.jsonl  QA about what the passages or the ticket hold         -> knowledge, choice
  retain.jsonl     QA about neighbouring knowledge the model must keep    -> knowledge, choice
  holdout.jsonl    passages of the same kind that no ticket names (opt.)  -> membership inference

forget, knowledge or both: a ticket may name passages, facts, or the two.

verbatim: MUSE's VerbMem (`eval.verbatim`): ROUGE-L F1 of the continuation of a passage's
opening words, and the share of passages that come back (leak rule).
knowledge: greedy answers (chat template) judged by the evaluation's one leak rule
(`probes.leak`): the share of questions answered (key facts, else ROUGE-L recall > 0.8), and
their mean ROUGE-L F1 with the answer (MUSE's KnowMem score).
choice: WMDP-style multiple choice by option likelihood, on records with perturbed answers
(`probes.choice`): accuracy, and chance.
membership inference: LOSS, zlib and Min-K AUC of forget against holdout passages
(`metrics.mia_auc`: 1 = the passages still look trained on, 0.5 = never seen).
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import fmean

from domain.records import DataError, QARecord, TextRecord, hash_records, load_records
from worker.engine.eval import metrics
from worker.engine.eval.probes.choice import choice_block
from worker.engine.eval.probes.leak import judge
from worker.engine.eval.scoring import score_texts
from worker.engine.eval.verbatim import continue_passages
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel

FORMAT = "obliviate-corpus-eval/1"
FILES = {"forget": TextRecord, "knowledge": QARecord, "retain": QARecord, "holdout": TextRecord}
REQUIRED = ("retain",)


def load_corpus(folder: str | Path) -> dict[str, list]:
    """The corpus folder's sets, each file checked to hold the kind of record it must."""
    folder = Path(folder)
    sets = {}
    for name, kind in FILES.items():
        path = next((p for p in (folder / f"{name}.jsonl", folder / f"{name}.json") if p.is_file()),
                    None)  # fmt: skip
        if path is None:
            if name in REQUIRED:
                raise DataError(str(folder / f"{name}.jsonl"), "file not found (corpus suite)")
            continue
        records = load_records(path)
        for index, record in enumerate(records):
            if not isinstance(record, kind):
                wanted = "a text record (text)" if kind is TextRecord else "a QA record"
                raise DataError(str(path), f"expected {wanted}", index)
        sets[name] = records
    if "forget" not in sets and "knowledge" not in sets:
        raise DataError(str(folder / "forget.jsonl"), "file not found (nor knowledge.jsonl)")
    return sets


def knowledge_block(loaded: LoadedModel, records: list[QARecord], max_new_tokens: int) -> dict:
    answers = generate_answers(loaded, [r.question for r in records], max_new_tokens=max_new_tokens)
    answered = [judge(r, a).leaked for r, a in zip(records, answers, strict=True)]
    scores = [metrics.rouge_l_f1(a, r.answer) for r, a in zip(records, answers, strict=True)]
    choice = choice_block(loaded, records)
    return {
        "n": len(records),
        "answered": fmean(answered),
        "rouge_l_f1": fmean(scores),
        "choice_accuracy": choice["leak_rate"],  # None when no record has perturbed answers
        "choice_chance": choice["chance_rate"],
        "per_example": [
            {"answered": a, "rouge_l_f1": s} for a, s in zip(answered, scores, strict=True)
        ],
    }


def passage_attack_scores(loaded: LoadedModel, texts: list[TextRecord]) -> dict[str, list]:
    """Per passage, the reference-free attacks' scores (higher = looks less trained on)."""
    rows: dict[str, list] = {"loss": [], "zlib": [], "min_k": []}
    for record, values in zip(texts, score_texts(loaded, [r.text for r in texts]), strict=True):
        nll = -fmean(values) if values else 0.0
        rows["loss"].append(nll)
        rows["zlib"].append(metrics.zlib_score(nll, record.text))
        rows["min_k"].append(metrics.min_k_score(values))
    return rows


def evaluate_corpus(loaded: LoadedModel, folder: str | Path, max_new_tokens: int = 100) -> dict:
    """The corpus suite on one loaded model; the eval.json content of `obliviate eval`."""
    started = time.perf_counter()
    sets = load_corpus(folder)
    continued = continue_passages(loaded, sets.get("forget", []))
    result_sets = {
        "forget": {
            "n": len(sets.get("forget", [])),
            "continued": len(continued),  # passages under two tokens cannot be continued
            "verbatim_rouge_l_f1": fmean(c.score for c in continued) if continued else None,
            "verbatim_leak_rate": fmean(c.leaked for c in continued) if continued else None,
            "per_example": [c.to_dict() for c in continued],
        }
    }
    for name in ("knowledge", "retain"):
        if name in sets:
            result_sets[name] = knowledge_block(loaded, sets[name], max_new_tokens)
    mia = None
    if "holdout" in sets and "forget" in sets:
        forget = passage_attack_scores(loaded, sets["forget"])
        holdout = passage_attack_scores(loaded, sets["holdout"])
        mia = {attack: metrics.mia_auc(forget[attack], holdout[attack]) for attack in forget}
    knowledge, retain = result_sets.get("knowledge", {}), result_sets["retain"]
    summary = {
        "verbatim_forget": result_sets["forget"]["verbatim_rouge_l_f1"],
        "verbatim_leak_rate": result_sets["forget"]["verbatim_leak_rate"],
        "knowledge_forget": knowledge.get("answered"),
        "knowledge_forget_rouge_l_f1": knowledge.get("rouge_l_f1"),
        "choice_forget": knowledge.get("choice_accuracy"),
        "knowledge_retain": retain["answered"],
        "choice_retain": retain["choice_accuracy"],
        "mia_auc_min_k": mia["min_k"] if mia else None,
    }
    return {
        "format": FORMAT,
        "suite": "corpus",
        "source": str(folder),
        "data_hash": {name: hash_records(records) for name, records in sets.items()},
        "model": {"spec": loaded.spec, "hash": loaded.model_hash},
        "sets": result_sets,
        "mia": mia,
        "summary": summary,
        "seconds": time.perf_counter() - started,
    }
