import pytest

from worker.engine.models import ModelError, load_model, pick_autocast


def test_loads_a_local_folder(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), precision="fp32")
    assert loaded.model.config.num_hidden_layers == 4
    assert loaded.autocast_dtype is None and len(loaded.model_hash) == 64


def test_rejects_a_fake_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelError, match="not a GGUF file"):
        load_model(str(fake))


def test_unknown_name_offline_names_the_builtins():
    with pytest.raises(ModelError, match="smollm2-135m"):
        load_model("no-such-model-anywhere")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        load_model(str(tmp_path))


def test_precision_flag_overrides_and_bad_values_fail():
    import torch

    assert pick_autocast(torch.device("cpu"), "fp32") is None
    assert pick_autocast(torch.device("cpu"), "bf16") is torch.bfloat16
    with pytest.raises(ModelError, match="unknown precision"):
        pick_autocast(torch.device("cpu"), "fp8")


@pytest.mark.slow
def test_builtin_model_loads_and_answers():
    from worker.engine.generate import generate_answers

    loaded = load_model("smollm2-135m")
    assert loaded.model.config.num_hidden_layers == 30
    (answer,) = generate_answers(loaded, ["What is the capital of France?"], max_new_tokens=16)
    assert "Paris" in answer
