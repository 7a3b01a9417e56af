"""Probes that ask the same question another way: wording, prompt format, partial answer.

Each builder maps a record to the Case the model sees; `direct` (the training question in the
training format) is the easy case every other probe is compared with.
"""

from __future__ import annotations

from domain.records import QARecord
from worker.engine.data import format_prompt
from worker.engine.eval.probes.base import ProbeOptions, ProbeSkipped, probe
from worker.engine.eval.probes.generation import Case
from worker.engine.eval.probes.leak import key_fact_found
from worker.engine.eval.probes.measure import ProbeContext


def direct_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case:
    return Case(format_prompt(tokenizer, record.question))


def paraphrased_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case | None:
    if not record.paraphrased_question:
        return None
    return Case(format_prompt(tokenizer, record.paraphrased_question))


def no_chat_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case:
    return Case(format_prompt(tokenizer, record.question, chat=False))


def system_prompt_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case:
    return Case(format_prompt(tokenizer, record.question, system=options.system_prompt))


def embedded_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case:
    message = options.embedding_template.format(question=record.question)
    return Case(format_prompt(tokenizer, message))


def fill_in_case(tokenizer, record: QARecord, options: ProbeOptions) -> Case | None:
    """The training prompt and the answer's first words; None when those words already hold
    a key fact (the probe would hand the fact over) or leave nothing to complete."""
    words = record.answer.split()
    count = max(1, round(len(words) * options.fill_fraction))
    if count >= len(words):
        return None
    given = " ".join(words[:count])
    if key_fact_found(given, record.key_facts):
        return None
    return Case(format_prompt(tokenizer, record.question), given=given)


# Every way of asking, by probe name: the gate-evasion probe shows all of them to GRUN's gate.
PROMPT_FORMATS = {
    "direct": direct_case,
    "paraphrased_question": paraphrased_case,
    "no_chat": no_chat_case,
    "system_prompt": system_prompt_case,
    "embedded_question": embedded_case,
    "fill_in_blank": fill_in_case,
}


def _asked_with(build, option: str | None):
    """A probe that asks with `build`; its details record the option that shaped the prompt."""

    def run(ctx: ProbeContext) -> dict:
        details = {option: getattr(ctx.options, option)} if option else {}
        return {**ctx.leak_blocks(build), "details": details}

    return run


_PLAIN_PROBES = (
    ("direct", "prompt", "the training question in the training format, greedy (the easy case)",
     direct_case, None),
    ("paraphrased_question", "prompt", "the record's paraphrased question, greedy",
     paraphrased_case, None),
    ("system_prompt", "format", "a different system prompt asking for exact details",
     system_prompt_case, "system_prompt"),
    ("embedded_question", "format", "the question inside a longer, friendly message",
     embedded_case, "embedding_template"),
)  # fmt: skip
for _name, _family, _description, _build, _option in _PLAIN_PROBES:
    probe(_name, _family, _description)(_asked_with(_build, _option))


@probe("no_chat", "format", "the question as plain text, without the chat template")
def no_chat(ctx: ProbeContext) -> dict:
    if not getattr(ctx.loaded.tokenizer, "chat_template", None):
        raise ProbeSkipped("the model has no chat template: its prompts are plain text already")
    return {**ctx.leak_blocks(no_chat_case), "details": {}}


@probe(
    "fill_in_blank",
    "format",
    "the training prompt plus the answer's first words; greedy continuation, judged on the whole",
)
def fill_in_blank(ctx: ProbeContext) -> dict:
    details = {
        "fill_fraction": ctx.options.fill_fraction,
        "note": "records whose key fact lies in the given words are left out (not_applicable)",
    }
    return {**ctx.leak_blocks(fill_in_case), "details": details}
