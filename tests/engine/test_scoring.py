"""Shared-prompt scoring and batched generation give what the plain computations give."""

import math

import pytest
import torch

from worker.engine.adapters import get_adapter
from worker.engine.data import IGNORE_INDEX, collate, encode_qa, format_prompt
from worker.engine.eval.fluency import generation_perplexity
from worker.engine.eval.scoring import ScoreRequest, score_requests
from worker.engine.generate import generate_answers
from worker.engine.models import load_model

QUESTIONS = [
    "What is the email of Ada Lovelace?",
    "Where does Alan Turing live, and what is his account number?",
    "Hi?",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), precision="fp32")


def full_sequence_logprobs(loaded, question: str, answer: str) -> torch.Tensor:
    """Log-prob of each answer token from one forward pass over prompt + answer."""
    batch = collate([encode_qa(loaded.tokenizer, question, answer)], loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = loaded.model(input_ids=batch["input_ids"]).logits[0, :-1]  # (T-1, V)
    labels = batch["labels"][0, 1:]  # (T-1,)
    keep = labels != IGNORE_INDEX
    return torch.log_softmax(logits[keep], -1).gather(-1, labels[keep, None]).squeeze(-1)


def test_shared_prompt_scores_equal_full_sequence_scores(tiny):
    requests = [
        ScoreRequest(QUESTIONS[0], ("ada@example.com", "The account number is 12345678.", "x")),
        ScoreRequest(QUESTIONS[1], ("1 Bletchley Park.",), (True,)),
        ScoreRequest(QUESTIONS[2], ("I don't know.", "That information is not available.")),
    ]
    # A small budget splits the requests over several batches of different widths.
    results = score_requests(tiny, requests, token_budget=60)
    for request, scores in zip(requests, results, strict=True):
        assert len(scores) == len(request.answers)
        for answer, score in zip(request.answers, scores, strict=True):
            expected = full_sequence_logprobs(tiny, request.question, answer)
            assert torch.allclose(torch.tensor(score.token_logprobs), expected, atol=1e-4)
            assert score.nll_mean == pytest.approx(-expected.mean().item(), abs=1e-4)
            assert len(score.content_hits) == len(expected) - 1  # end token left out
    assert results[1][0].zscores is not None and results[0][0].zscores is None


def test_generation_equals_hf_generate_greedy(tiny):
    ours = generate_answers(tiny, QUESTIONS, max_new_tokens=12, batch_size=2)
    tokenizer = tiny.tokenizer
    tokenizer.padding_side = "left"
    prompts = [format_prompt(tokenizer, q) for q in QUESTIONS]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    output = tiny.model.generate(
        **encoded,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = output[:, encoded["input_ids"].shape[1] :]
    expected = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    assert ours == expected
    assert any(ours), "the tiny model should say something for this test to mean anything"


def test_generation_perplexity_under_a_judge_model(tiny):
    questions = ["What is the email of Ada Lovelace?"] * 2
    perplexity = generation_perplexity(tiny, questions, ["", "ada@example.com"])
    expected = score_requests(tiny, [ScoreRequest(questions[1], ("ada@example.com",))])
    assert perplexity[0] is None  # nothing generated, nothing to judge
    assert perplexity[1] == pytest.approx(math.exp(expected[0][0].nll_mean))


@pytest.mark.parametrize(
    ("adapter", "options"),
    [
        ("lora", {}),
        # soft: the randomised gates lie anywhere, and the test needs the edit applied
        ("grun", {"positions": "last_prompt", "inference_gate": "soft"}),
        ("grun", {"positions": "prompt", "inference_gate": "soft"}),
        ("grun", {"positions": "all", "inference_gate": "hard"}),
    ],
)
def test_shared_prompt_scoring_through_adapters(tiny_model_dir, adapter, options):
    """A base + adapter model scores as one full pass would (the prompt's edit is in the cache)."""
    loaded = load_model(str(tiny_model_dir), precision="fp32")
    base = full_sequence_logprobs(loaded, QUESTIONS[0], "ada@example.com")
    torch.manual_seed(0)  # the adapter's initial weights: not whatever earlier tests left
    attached = get_adapter(adapter, **options)
    loaded.model = attached.attach(loaded.model, needs_reference=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a trained-looking adapter: far from its no-op initialisation
        for parameter in attached.trainable().values():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    loaded.model.eval()
    requests = [ScoreRequest(QUESTIONS[0], ("ada@example.com", "The account is 12345678."))]
    (scores,) = score_requests(loaded, requests)
    edited = full_sequence_logprobs(loaded, QUESTIONS[0], "ada@example.com")
    assert not torch.allclose(edited, base, atol=1e-3), "the adapter should change the model"
    for answer, score in zip(requests[0].answers, scores, strict=True):
        expected = full_sequence_logprobs(loaded, QUESTIONS[0], answer)
        assert torch.allclose(torch.tensor(score.token_logprobs), expected, atol=1e-4)
