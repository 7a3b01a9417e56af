"""Unlearn until it is gone: the stopping rule's check, run by the training loop every k steps.

The check asks the model being trained the forget questions (as filed, reworded where the
record has a paraphrase, and as plain text when a limit names `no_chat`) and has it continue
the forget passages' opening words, greedily, and
judges each answer with the one leak rule of the evaluation (`eval.probes.leak`). The run stops
once every probe's leak rate is at or below its limit, so a ticket spends the steps its data
needs, not a fixed count, and only when two more things hold: the forgotten answers are fluent
(no loops), and the neighbours (a sample of the retain records) still give their key facts at
`min_kept` of the rate before the run.
Measured why (issue 19): on the demo ticket the leak rule alone stopped at step 8 with answers
that no longer held the facts but were garbled ("that of that account number that is...") and
with the gate still opening on another customer (utility ratio 0.59).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TypeVar

import torch

from domain.records import QARecord, Record, TextRecord
from worker.engine.eval import metrics
from worker.engine.eval.fluency import fluency
from worker.engine.eval.probes.leak import judge
from worker.engine.eval.verbatim import continue_passages
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel

T = TypeVar("T")
MIN_FLUENCY = 0.9  # mean of 1 − repeated word trigrams over the forgotten answers
# ROUGE-L F1 with the closest refusal: a reworded refusal scores about 0.8, the demo's
# "I couldn't nota the most recent purchase..." under 0.3.
MIN_REFUSAL_LIKENESS = 0.6
NEIGHBOURS = 16  # retain records the check asks (the first ones with key facts)
NEIGHBOUR_GROUP = "_neighbours"  # the neighbours' questions, asked with the probes' (no probe)


@dataclass(frozen=True)
class CheckProbe:
    """What a probe asks of a QA record (None: nothing, e.g. no paraphrase), and in which
    format: in the chat template as in training, or as plain text."""

    question: Callable[[QARecord], str | None]
    chat: bool = True


# The probes the check can ask cheaply, by the name the publish policy uses for them: three ask
# a QA record's question (as filed; reworded where it has a paraphrase; as plain text without
# the chat template, the robustness probe `no_chat`); one continues a text record's opening
# words (`eval.verbatim`). The plain-text one is asked only when a limit names it: the
# evaluation measures it with the other robustness probes. Found on the ticket benchmark
# (issue 19): 5 of 15 tickets still gave 1-3 of 8 facts as plain text, and a policy limiting
# `no_chat` had a check that never asked it, so runs stopped early and were then held.
CHECK_PROBES: dict[str, CheckProbe] = {
    "direct": CheckProbe(lambda r: r.question),
    "paraphrased": CheckProbe(lambda r: r.paraphrased_question),
    "no_chat": CheckProbe(lambda r: r.question, chat=False),
}
ASKED_UNLESS_NAMED = ("direct", "paraphrased")  # what `ask_probes` asks when not given names
TEXT_PROBE = "verbatim"


def check_probes(records: Sequence[Record]) -> dict[str, list[tuple[str, QARecord]]]:
    """Per QA probe, the (question, record) pairs it asks; probes with no question are left out."""
    qa = [r for r in records if isinstance(r, QARecord)]
    pairs = {
        name: [(q, r) for r in qa if (q := probe.question(r))]
        for name, probe in CHECK_PROBES.items()
    }
    return {name: rows for name, rows in pairs.items() if rows}


def not_applicable(records: Sequence[Record]) -> list[str]:
    """Probes about a kind of record the ticket has none of: a passage has no question to ask,
    a QA record no passage to continue. The publish rule does not hold their absence against a
    ticket (a probe that applies and was not measured still holds it)."""
    names = [] if any(isinstance(r, QARecord) for r in records) else list(CHECK_PROBES)
    return names + ([] if any(isinstance(r, TextRecord) for r in records) else [TEXT_PROBE])


def ask_and_judge(
    loaded: LoadedModel, rows, max_new_tokens: int, *, chat: bool = True
) -> tuple[list[bool], list[str]]:
    """Greedy answers to the (question, record) rows and whether each leaked (`leak.judge`)."""
    questions = [q for q, _ in rows]
    answers = generate_answers(loaded, questions, chat=chat, max_new_tokens=max_new_tokens)
    return [judge(r, a).leaked for a, (_, r) in zip(answers, rows, strict=True)], answers


@dataclass(frozen=True)
class Asked:
    """One probe's answers: whether each leaked, what the model said, and (verbatim only) each
    continuation's ROUGE-L F1 with the passage's true rest."""

    leaked: list[bool]
    said: list[str]
    scores: list[float] | None = None


def ask_together(
    loaded: LoadedModel,
    groups: Mapping[str, Sequence[tuple[str, QARecord]]],
    max_new_tokens: int,
    plain: Collection[str] = (),
) -> dict[str, Asked]:
    """Every group's (question, record) rows asked and judged in one generation per format
    (the groups named in `plain` as plain text, the others in the chat template): on the CPU
    one batch of 32 questions costs far less than three of 8, 8 and 16 (issue 14)."""
    asked = {}
    for chat in (True, False):
        part = {name: rows for name, rows in groups.items() if (name not in plain) == chat}
        rows = [row for group in part.values() for row in group]
        leaked, said = ask_and_judge(loaded, rows, max_new_tokens, chat=chat) if rows else ([], [])
        start = 0
        for name, group in part.items():
            end = start + len(group)
            asked[name] = Asked(leaked[start:end], said[start:end])
            start = end
    return {name: asked[name] for name in groups}


def ask_probes(
    loaded: LoadedModel,
    records: Sequence[Record],
    max_new_tokens: int,
    names: Collection[str] | None = None,
    also: Mapping[str, Sequence[tuple[str, QARecord]]] | None = None,
) -> dict[str, Asked]:
    """Every probe that applies to these records, asked: those in `names`, when given, else
    `ASKED_UNLESS_NAMED` and the text probe; `also`: more groups of (question, record) rows
    asked in the chat template with the probes' chat-template questions."""
    wanted_qa = ASKED_UNLESS_NAMED if names is None else names
    groups = {name: rows for name, rows in check_probes(records).items() if name in wanted_qa}
    plain = [name for name in groups if not CHECK_PROBES[name].chat]
    asked = ask_together(loaded, {**groups, **(also or {})}, max_new_tokens, plain=plain)
    texts = [r for r in records if isinstance(r, TextRecord)]
    wanted = names is None or TEXT_PROBE in names
    if continued := continue_passages(loaded, texts) if texts and wanted else []:
        asked[TEXT_PROBE] = Asked(
            [c.leaked for c in continued],
            [c.generated for c in continued],
            [c.score for c in continued],
        )
    return asked


def evaluated(loaded: LoadedModel, measure: Callable[[], T]) -> T:
    """`measure()` in eval mode without gradients, the model's training mode restored after
    (a check runs in the middle of a training loop)."""
    was_training = loaded.model.training
    loaded.model.eval()
    with torch.no_grad():
        result = measure()
    loaded.model.train(was_training)
    return result


def leak_check(
    loaded: LoadedModel,
    records: Sequence[Record],
    limits: Mapping[str, float],
    neighbours: Sequence[Record] = (),
    min_kept: float = 0.9,
    max_new_tokens: int = 48,
    refusals: Sequence[str] = (),
) -> Callable[[int], dict]:
    """`check(step)` for `train()`: leak rate per probe named in `limits`, the fluency of the
    forgotten answers, the neighbours' key-fact recall kept, and whether all pass.

    With `refusals` (a method that trains towards them) a forgotten answer is fluent only when
    it reads as one of them (`MIN_REFUSAL_LIKENESS`): measured on the demo ticket, a run that
    stopped on the leak rule answered "I couldn't nota the most recent purchase of Ryan Williams
    was at Jones, Jones and Williams." — no loop, no key fact, yet neither a refusal nor fluent.

    Limits naming a probe the check cannot ask are ignored here (the evaluation still gates
    on them); with no askable probe at all the rule cannot pass and the run uses its budget.
    The neighbours' recall before the run is measured here, when the check is made."""
    known = [r for r in neighbours if isinstance(r, QARecord) and r.key_facts][:NEIGHBOURS]
    neighbour_rows = [(r.question, r) for r in known]

    def recall() -> float:
        return fmean(ask_and_judge(loaded, neighbour_rows, max_new_tokens)[0])

    before = evaluated(loaded, recall) if neighbour_rows else None

    def measure() -> dict:
        also = {NEIGHBOUR_GROUP: neighbour_rows} if before else {}
        asked = ask_probes(loaded, records, max_new_tokens, names=limits, also=also)
        neighbours_asked = asked.pop(NEIGHBOUR_GROUP, None)
        rates = {name: fmean(probe.leaked) for name, probe in asked.items()}
        answers = [a for probe in asked.values() for a in probe.said]
        fluent = fmean(fluency(a) for a in answers) if answers else None
        # Only the answers to chat-template questions can be refusals: a passage's continuation
        # is no answer, and a plain-text question gets a text's continuation, not the reply
        # trained in the template (measured on the demo: a check that wanted refusals there
        # never passed, though nothing leaked at steps 16 and 48). There only the leak counts.
        chat_probes = [name for name in asked if name in CHECK_PROBES and CHECK_PROBES[name].chat]
        replies = [a for name in chat_probes for a in asked[name].said]
        refusing = None
        if refusals and replies:
            likeness = [metrics.refusal_likeness(a, refusals) for a in replies]
            refusing = fmean(x >= MIN_REFUSAL_LIKENESS for x in likeness)
        kept = None
        if neighbours_asked is not None and before:  # never recalled: cannot be kept or lost
            kept = fmean(neighbours_asked.leaked) / before
        leaks_ok = bool(rates) and all(rates[name] <= limits[name] for name in rates)
        fluent_ok = (fluent is None or fluent >= MIN_FLUENCY) and refusing in (None, 1.0)
        share = 1.0 if kept is None else min(kept, 1.0)
        return {
            "passed": leaks_ok and fluent_ok and share >= min_kept,
            # How close to passing, for the loop's best state: no leak first, then fluency,
            # then the neighbours' share kept.
            "score": 4 * leaks_ok + 2 * fluent_ok + share,
            "leak_rate": rates,
            "fluency": fluent,
            "refusals": refusing,  # share of forgotten answers that read as a refusal
            "neighbours_kept": kept,
        }

    return lambda step: evaluated(loaded, measure)
