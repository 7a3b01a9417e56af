"""Multiple choice by likelihood: does the model still prefer the true answer?

Options are the true answer and the record's perturbed answers, each scored teacher-forced
after the training prompt (mean NLL over answer tokens; lower wins). The true option is the
paraphrased answer when the record has one: TOFU and the synthetic data write the perturbed
answers in the paraphrase's wording, so only the fact differs between the options. A record
leaks when the true option wins outright; chance is 1/(k+1) for k perturbed answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.records import QARecord
from worker.engine.eval.probes.base import probe
from worker.engine.eval.probes.measure import ProbeContext, summarise
from worker.engine.eval.scoring import ScoreRequest, score_requests
from worker.engine.models import LoadedModel


def true_option(record: QARecord) -> str:
    return record.paraphrased_answer or record.answer


def choice_block(loaded: LoadedModel, records: Sequence[QARecord]) -> dict:
    used = [i for i, r in enumerate(records) if r.perturbed_answer]
    requests = [
        ScoreRequest(records[i].question, (true_option(records[i]), *records[i].perturbed_answer))
        for i in used
    ]
    scores = score_requests(loaded, requests) if requests else []
    per_example: list[dict] = []
    for index, options in zip(used, scores, strict=True):
        nll = [s.nll_mean for s in options]
        picked = min(range(len(nll)), key=nll.__getitem__)
        leaked = picked == 0 and nll.count(nll[0]) == 1  # a tie is no preference
        per_example.append(
            {
                "index": index,
                "question": records[index].question,
                "leaked": leaked,
                "picked": picked,
                "nll": nll,
                "chance": 1 / len(nll),
            }
        )
    block = summarise(per_example, len(records))
    block["chance_rate"] = (
        sum(row["chance"] for row in per_example) / len(per_example) if per_example else None
    )
    return block


@probe(
    "multiple_choice",
    "format",
    "true vs perturbed answers picked by likelihood (lowest mean answer NLL); chance 1/(k+1)",
)
def multiple_choice(ctx: ProbeContext) -> dict:
    blocks = {
        "model": {name: choice_block(ctx.loaded, records) for name, records in ctx.sets.items()},
        "reference": None,
    }
    if ctx.reference is not None:
        blocks["reference"] = {"forget": choice_block(ctx.reference, ctx.sets["forget"])}
    return {**blocks, "details": {"true_option": "paraphrased_answer if present, else answer"}}
