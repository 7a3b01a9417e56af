"""General questions no run trains on: what every other user asks must come out the same.

GRUN's gate negatives are a different list (`adapters.grun.GENERAL_QUESTIONS`), so a gate that
stays shut here has generalised, not memorised. Two users: the ticket benchmark's "general
unchanged", and the publish gate's utility when a model has no utility or retain data (the
model's own answers before unlearning are the reference: utility kept = how likely the new
version still finds them). Written by us.
"""

from __future__ import annotations

from domain.records import QARecord
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel

GENERAL_QUESTIONS = (
    "What is the capital of Japan?",
    "How many minutes are there in an hour?",
    "What colour is the sky on a clear day?",
    "Who painted the Mona Lisa?",
    "What is the square root of 81?",
    "Which planet is closest to the sun?",
    "What do bees make?",
    "How many continents are there?",
    "What is the opposite of cold?",
    "Name a fruit that is yellow.",
    "What is the tallest animal?",
    "How many sides does a triangle have?",
    "What is frozen water called?",
    "In which country are the pyramids of Giza?",
    "What instrument has black and white keys?",
    "How many hours are there in a day?",
)


def own_answers(loaded: LoadedModel, max_new_tokens: int = 32) -> list[QARecord]:
    """The general questions with the model's own greedy answers (empty answers left out)."""
    answers = generate_answers(loaded, list(GENERAL_QUESTIONS), max_new_tokens=max_new_tokens)
    return [QARecord(q, a.strip()) for q, a in zip(GENERAL_QUESTIONS, answers, strict=True)
            if a.strip()]  # fmt: skip
