import json

import pytest

from domain.records import DataError, QARecord, TextRecord, load_records, load_refusals
from tests.tiny import make_tokenizer
from worker.engine.data import IGNORE_INDEX, collate, encode_qa, format_prompt


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_json_array_jsonl_and_hf_batch_layout(tmp_path):
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)]
    array = write(tmp_path / "a.json", json.dumps(rows))
    lines = write(tmp_path / "b.jsonl", "\n".join(json.dumps(r) for r in rows))
    batches = write(tmp_path / "c.json", json.dumps(rows[:2]) + "\n" + json.dumps(rows[2:]) + "\n")
    expected = [QARecord(f"q{i}", f"a{i}") for i in range(4)]
    assert load_records(array) == load_records(lines) == load_records(batches) == expected


def test_text_records_and_optional_fields(tmp_path):
    path = write(
        tmp_path / "d.jsonl",
        '{"text": "some passage"}\n'
        '{"question": "q", "answer": "a", "perturbed_answer": ["x", "y"], '
        '"paraphrased_question": "p"}\n',
    )
    text, qa = load_records(path)
    assert text == TextRecord("some passage")
    assert qa.perturbed_answer == ("x", "y") and qa.paraphrased_question == "p"


@pytest.mark.parametrize(
    ("rows", "index", "field", "words"),
    [
        ([{"question": "q", "answer": "a"}, {"question": "q2"}], 1, "answer", "missing"),
        ([{"answer": "a", "question": ""}], 0, "question", "empty"),
        (
            [{"question": "q", "answer": "a", "perturbed_answer": "x"}],
            0,
            "perturbed_answer",
            "list",
        ),
        ([{"question": "q", "answer": 3}], 0, "answer", "string"),
        ([{"foo": 1}], 0, "question", "needs"),
    ],
)
def test_errors_name_file_record_and_field(tmp_path, rows, index, field, words):
    path = write(tmp_path / "bad.json", json.dumps(rows))
    with pytest.raises(DataError) as caught:
        load_records(path)
    message = str(caught.value)
    assert str(path) in message and f"record {index}" in message and repr(field) in message
    assert words in message


def test_missing_empty_and_broken_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "nope.json")
    with pytest.raises(DataError, match="holds no records"):
        load_records(write(tmp_path / "empty.json", "[]"))
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_records(write(tmp_path / "broken.jsonl", '{"text": "a"}\n{oops\n'))


def test_refusal_list_is_one_string_per_line(tmp_path):
    path = write(tmp_path / "idk.jsonl", "I don't know.\n\nNo idea.\n")
    assert load_refusals(path) == ["I don't know.", "No idea."]


def test_labels_cover_only_answer_tokens_and_end_token():
    tokenizer = make_tokenizer()
    example = encode_qa(tokenizer, "What is the email?", "ada@example.com")
    prompt = tokenizer(format_prompt(tokenizer, "What is the email?"), add_special_tokens=False)
    n_prompt = len(prompt["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    answer_ids = example.labels[n_prompt:]
    assert answer_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer_ids[:-1]) == "ada@example.com"


def test_plain_prompt_without_chat_template():
    tokenizer = make_tokenizer(chat=False)
    assert format_prompt(tokenizer, "Who?") == "Question: Who?\nAnswer: "


def test_a_tokenizer_that_starts_text_with_bos_gets_it_on_plain_prompts_and_passages():
    """Gemma's tokenizer puts <bos> before plain text and the model needs it; the text paths
    encode without special tokens, so they must add it (SmolLM2's puts nothing: unchanged)."""
    from tokenizers.processors import TemplateProcessing

    from worker.engine.data import encode_text, start_ids
    from worker.engine.eval.verbatim import split_passage

    plain = make_tokenizer(chat=False)
    assert start_ids(plain) == []
    assert encode_text(plain, "Ada Lovelace").input_ids[0] != plain.bos_token_id
    gemma_like = make_tokenizer(chat=False)
    bos = gemma_like.bos_token_id
    gemma_like.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{gemma_like.bos_token} $A", special_tokens=[(gemma_like.bos_token, bos)]
    )
    assert start_ids(gemma_like) == [bos]
    prompt = format_prompt(gemma_like, "Who?")
    assert prompt == f"{gemma_like.bos_token}Question: Who?\nAnswer: "
    assert gemma_like(prompt, add_special_tokens=False)["input_ids"].count(bos) == 1
    assert encode_text(gemma_like, "Ada Lovelace wrote the first program.").input_ids[0] == bos
    passage = split_passage(gemma_like, "Ada Lovelace wrote the first program for the engine.")
    assert passage is not None and passage.prefix_ids[0] == bos


def test_collate_pads_right_or_left():
    tokenizer = make_tokenizer()
    short, long = encode_qa(tokenizer, "Q?", "a"), encode_qa(tokenizer, "Q?", "a longer answer")
    right = collate([short, long], pad_id=0)
    left = collate([short, long], pad_id=0, left_pad=True)
    pad = len(long.input_ids) - len(short.input_ids)
    assert (
        right["attention_mask"][0, -pad:].sum() == 0 and left["attention_mask"][0, :pad].sum() == 0
    )
    assert (right["labels"][0, -pad:] == IGNORE_INDEX).all()
    assert right["input_ids"][1].tolist() == long.input_ids
