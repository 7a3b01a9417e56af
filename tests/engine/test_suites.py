"""Suites on tiny TOFU-format files: a complete eval.json, the reference, the cache, errors."""

import json

import pytest
from typer.testing import CliRunner

from cli.eval_commands import DEFAULT_MODEL as CLI_DEFAULT_MODEL
from cli.main import app
from domain.records import DataError
from tests.tofu_files import perturbed, qa, write_tofu
from worker.engine.eval import EvalOptions, evaluate, write_eval
from worker.engine.eval.suites import TOFU_DIR_ENV, tofu_suite
from worker.engine.models import DEFAULT_MODEL, load_model

FAST = dict(max_new_tokens=6, precision="fp32")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), precision="fp32")


@pytest.fixture
def tofu_dir(tmp_path):
    return write_tofu(tmp_path / "tofu")


def options(tofu_dir, **extra) -> EvalOptions:
    return EvalOptions(data_dir=str(tofu_dir), max_new_tokens=6, **extra)


def test_tofu_suite_writes_a_complete_eval_json(tiny, tofu_dir, tmp_path):
    result = evaluate(tiny, "tofu", "forget05", options=options(tofu_dir))
    saved = json.loads(write_eval(tmp_path / "out" / "eval.json", result).read_text())
    summary = saved["summary"]
    for key in (
        "forget_prob", "forget_paraphrased_prob", "forget_truth_ratio", "forget_rouge",
        "forget_fluency", "forget_extraction_strength", "forget_exact_memorisation",
        "retain_prob", "retain_rouge", "retain_truth_ratio",
        "real_authors_normalised_prob", "real_authors_rouge", "real_authors_truth_ratio",
        "world_facts_normalised_prob", "world_facts_rouge", "world_facts_truth_ratio",
        "model_utility", "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus",
    ):  # fmt: skip
        assert isinstance(summary[key], float), key
    # Without a retain model's evaluation these are reported as not computed, never faked.
    for key in ("forget_quality", "privleak", "mia_reference"):
        assert summary[key] is None and key in saved["not_computed"]
    forget = saved["sets"]["forget"]
    assert forget["n"] == 3 and len(forget["data_hash"]) == 64
    for column in ("prob", "truth_ratio", "rouge_l_recall", "generation", "fluency", "nll"):
        assert len(forget["per_example"][column]) == 3, column
    assert len(saved["mia"]["min_k"]["holdout"]) == 3
    assert saved["model"]["hash"] == tiny.model_hash
    assert saved["timings"]["forget"]["answers_scored"] == 3 * 5  # answer, paraphrase, 3 perturbed


def test_reference_enables_forget_quality_and_rerun_uses_the_cache(tiny, tofu_dir):
    first = evaluate(tiny, "tofu", "forget05", options=options(tofu_dir))
    # The same model as its own "retain model": identical truth ratios and AUCs.
    second = evaluate(tiny, "tofu", "forget05", reference=first, options=options(tofu_dir))
    assert second["summary"]["forget_quality"] == pytest.approx(1.0)
    assert second["summary"]["privleak"] == pytest.approx(0.0)
    assert second["summary"]["mia_reference"] == pytest.approx(0.5)
    assert second["timings"]["forget"]["answers_scored"] == 0
    assert second["timings"]["forget"]["generated"] == 0
    assert second["sets"]["forget"]["per_example"] == first["sets"]["forget"]["per_example"]


def test_reference_on_other_data_is_refused(tiny, tofu_dir):
    small = evaluate(tiny, "tofu", "forget05", options=options(tofu_dir, limit=2))
    with pytest.raises(DataError, match="forget set differs"):
        evaluate(tiny, "tofu", "forget05", reference=small, options=options(tofu_dir))


def test_missing_field_names_file_record_and_field(tofu_dir):
    rows = [perturbed(0), qa(1)]  # record 1 has no paraphrased answer
    (tofu_dir / "forget05_perturbed.json").write_text(json.dumps(rows))
    with pytest.raises(
        DataError, match=r"forget05_perturbed.json: record 1: field 'paraphrased_answer'"
    ):
        tofu_suite("forget05", tofu_dir)


def test_tofu_folder_from_environment(tofu_dir, monkeypatch):
    monkeypatch.setenv(TOFU_DIR_ENV, str(tofu_dir))
    assert len(tofu_suite("forget05").sets["world_facts"].records) == 3
    with pytest.raises(DataError, match="unknown split"):
        tofu_suite("forget07")


def test_synthetic_suite_reports_leak_rate(tiny):
    result = evaluate(tiny, "synthetic", "forget1", options=EvalOptions(limit=2, max_new_tokens=6))
    assert set(result["sets"]) == {"forget", "retain", "holdout"}
    assert 0.0 <= result["summary"]["forget_leak_rate"] <= 1.0
    assert "model_utility_9" in result["not_computed"]


def test_cli_writes_eval_json_and_rejects_a_missing_folder(tiny_model_dir, tofu_dir, tmp_path):
    assert CLI_DEFAULT_MODEL == DEFAULT_MODEL  # the CLI names it without importing torch
    output = tmp_path / "eval.json"
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--data-dir",
        str(tofu_dir),
        "--output",
        str(output),
        "--max-new-tokens",
        "4",
        "--precision",
        "fp32",
        "--limit",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["summary"]["forget_quality"] is None
    missing = CliRunner().invoke(app, [*args[:4], str(tmp_path / "nowhere"), *args[5:]])
    assert missing.exit_code == 2 and "TOFU data folder not found" in missing.output


def test_grun_models_report_their_gates_and_plain_models_do_not(tiny_model_dir, tofu_dir):
    from worker.engine.adapters import get_adapter

    plain = evaluate(load_model(str(tiny_model_dir), precision="fp32"), "tofu", "forget05",
                     options=options(tofu_dir, use_cache=False))  # fmt: skip
    assert plain["gates"] is None
    loaded = load_model(str(tiny_model_dir), precision="fp32")
    get_adapter("grun").attach(loaded.model, needs_reference=False)
    result = evaluate(loaded, "tofu", "forget05", options=options(tofu_dir, use_cache=False))
    gates = result["gates"]
    assert {"forget", "paraphrased_forget", "retain", "real_authors"} <= set(gates)
    (forget_request,) = gates["forget"]
    assert 0.0 <= forget_request["mean"] <= 1.0
