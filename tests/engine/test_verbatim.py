"""Verbatim memorisation of text records (MUSE's VerbMem): what the publish gate asks a
text ticket, on a tiny model that memorised one passage."""

import pytest

from domain.records import TextRecord
from tests.engine.memorized import (
    memorised_passage_model,
    one_thread,  # noqa: F401  (fixture)
)
from tests.tiny import make_tokenizer
from worker.engine.eval.verbatim import (
    MAX_CONTINUATION,
    PREFIX_TOKENS,
    continue_passages,
    split_passage,
)

pytestmark = pytest.mark.usefixtures("one_thread")

KNOWN = "The account number of Alan Turing is 12345678 and he lives at 1 Bletchley Park."
UNSEEN = "Ada Lovelace wrote the first program for the Analytical Engine in the year 1843."


def test_the_prompt_is_at_most_half_a_passage_and_at_most_musees_length():
    tokenizer = make_tokenizer()
    short = split_passage(tokenizer, KNOWN)
    n = len(tokenizer(KNOWN, add_special_tokens=False)["input_ids"])
    assert len(short.prefix_ids) == n // 2 and short.rest_tokens == n - n // 2
    assert KNOWN.endswith(short.rest)
    long = split_passage(tokenizer, " ".join([KNOWN] * 40))
    assert len(long.prefix_ids) == PREFIX_TOKENS and long.rest_tokens == MAX_CONTINUATION
    assert split_passage(tokenizer, "a") is None  # nothing left to reproduce


@pytest.fixture(scope="module")
def memorised():
    return memorised_passage_model(KNOWN)


def test_a_memorised_passage_comes_back_and_an_unseen_one_does_not(memorised):
    known, unseen = continue_passages(memorised, [TextRecord(KNOWN), TextRecord(UNSEEN)])
    assert known.leaked and known.score > 0.9
    assert not unseen.leaked and unseen.score < 0.5
    # Each continuation is cut to its own passage's rest, though generation ran to the longest.
    for continuation in (known, unseen):
        generated = memorised.tokenizer(continuation.generated, add_special_tokens=False)
        assert len(generated["input_ids"]) <= continuation.passage.rest_tokens + 1
