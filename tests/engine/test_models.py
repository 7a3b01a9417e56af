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


PARTS_PACKAGE = """
from pathlib import Path
calls = []
def assemble(path, overwrite=False):  # as the gemma3 package's: joins its parts, checks them
    calls.append(Path(path))
    if Path(path).parent.name != "gguf":
        raise AssertionError(path)
    Path(path).write_bytes(b"GGUF-joined")
    if JOIN_FAILS:
        raise ValueError("Assembled file sha256 did not match expected value")
    return Path(path)
JOIN_FAILS = False
"""


def test_a_built_in_shipped_in_parts_is_joined_once_into_the_cache(tmp_path, monkeypatch):
    """Found in use: gemma3-270m's package ships its GGUF in parts; the loader looked for a
    .gguf in the package and the built-in never loaded."""
    import importlib

    from worker.engine.models import BuiltinModel, _builtin_gguf

    (tmp_path / "parts_pkg").mkdir()
    (tmp_path / "parts_pkg" / "__init__.py").write_text(PARTS_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    package = importlib.import_module("parts_pkg")
    builtin = BuiltinModel("parts", "parts_pkg", "model.gguf", "pip install parts", chunked=True)
    package.JOIN_FAILS = True  # a part damaged: no file left that looks whole
    with pytest.raises(ModelError, match="do not join.*pip install parts"):
        _builtin_gguf(builtin)
    assert list((tmp_path / "home" / "gguf").iterdir()) == []
    package.JOIN_FAILS = False
    joined = _builtin_gguf(builtin)
    assert joined == tmp_path / "home" / "gguf" / "model.gguf"
    assert joined.read_bytes() == b"GGUF-joined" and _builtin_gguf(builtin) == joined
    assert len(package.calls) == 2  # the failed join and the good one; the last call reused it
    # Dequantized into its folder, the joined file is gone (250 MB for gemma3-270m).
    from worker.engine import models

    def dequantize(gguf, folder):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_dequantize_to_folder", dequantize)
    folder = models.cached_gguf_folder("parts", lambda: _builtin_gguf(builtin))
    assert (folder / "config.json").is_file() and not joined.exists()


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


def test_a_cache_folder_another_process_finished_first_is_kept(tmp_path):
    """Found in use: two processes dequantized the built-in model at once and the second one's
    rename failed with 'Directory not empty', killing a benchmark."""
    from worker.engine.models import _publish_folder

    target, late = tmp_path / "smollm2", tmp_path / "smollm2.staging"
    for folder, marker in ((target, "first"), (late, "second")):
        folder.mkdir()
        (folder / "config.json").write_text(marker)
    _publish_folder(late, target)
    assert (target / "config.json").read_text() == "first" and not late.exists()
    half = tmp_path / "half"
    (half / "leftover").mkdir(parents=True)  # not a finished folder: the rename error stands
    late.mkdir()
    (late / "config.json").write_text("second")
    with pytest.raises(OSError):
        _publish_folder(late, half)
