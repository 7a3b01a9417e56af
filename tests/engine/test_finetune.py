import json
import resource
import sys

import pytest
import torch
from safetensors.torch import load_file

from domain.progress import Cancelled
from worker.engine.artifacts import OutputExistsError
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.models import load_model


def config(tiny_model_dir, output, **overrides) -> FinetuneConfig:
    options = dict(data="inline", output=str(output), model=str(tiny_model_dir), epochs=4,
                   lr=3e-3, batch_size=4, precision="fp32", seed=0)  # fmt: skip
    return FinetuneConfig(**{**options, **overrides})


def weights(folder):
    return load_file(folder / "model.safetensors")


def test_training_lowers_the_loss_and_writes_a_loadable_folder(
    tiny_model_dir, tmp_path, qa_records
):
    info = finetune(config(tiny_model_dir, tmp_path / "out"), qa_records)
    losses = info["losses"]
    assert len(losses) == 8  # 8 records / batch 4 * 4 epochs
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["data"]["train"] and run["model"]["hash"] and run["cost"]["tokens_per_s"] > 0
    assert not (tmp_path / "out" / "PARTIAL").exists()
    assert not (tmp_path / "out.partial").exists()
    reloaded = load_model(str(tmp_path / "out"), precision="fp32")
    assert reloaded.model_hash == info["output_hash"]


def test_same_seed_same_weights(tiny_model_dir, tmp_path, qa_records):
    finetune(config(tiny_model_dir, tmp_path / "a", epochs=1), qa_records)
    finetune(config(tiny_model_dir, tmp_path / "b", epochs=1), qa_records)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(sys.platform != "linux", reason="per-run peak RSS needs Linux's /proc")
def test_peak_memory_is_the_runs_own_not_an_earlier_jobs(tiny_model_dir, tmp_path, qa_records):
    # A worker process runs many jobs; an earlier, larger one must not show up as this one's.
    earlier_job = torch.ones(512 * 2**20 // 4)  # 512 MB resident, then freed
    with_earlier_job_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del earlier_job
    info = finetune(config(tiny_model_dir, tmp_path / "out", epochs=1), qa_records)
    assert info["cost"]["peak_memory_mb"] < with_earlier_job_mb - 256


def test_resume_continues_where_it_stopped(tiny_model_dir, tmp_path, qa_records):
    finetune(config(tiny_model_dir, tmp_path / "straight"), qa_records)
    calls = []

    def stop_after_two_epochs():
        calls.append(1)
        return len(calls) > 4  # 2 steps per epoch: stop at the start of step 5

    with pytest.raises(Cancelled):
        finetune(
            config(tiny_model_dir, tmp_path / "resumed"),
            qa_records,
            should_stop=stop_after_two_epochs,
        )
    partial = tmp_path / "resumed.partial"
    assert (partial / "PARTIAL").exists() and not (tmp_path / "resumed").exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        finetune(config(tiny_model_dir, tmp_path / "resumed"), qa_records)
    info = finetune(config(tiny_model_dir, tmp_path / "resumed", resume=True), qa_records)
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert len(info["losses"]) == 8
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_refuses_existing_output_unless_overwrite(tiny_model_dir, tmp_path, qa_records):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        finetune(config(tiny_model_dir, tmp_path / "out", epochs=1), qa_records)
    finetune(config(tiny_model_dir, tmp_path / "out", epochs=1, overwrite=True), qa_records)
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_lora_finetune_leaves_the_base_untouched(tiny_model_dir, tmp_path, qa_records):
    before = weights(tiny_model_dir)
    finetune(config(tiny_model_dir, tmp_path / "lora", adapter="lora", merge=False), qa_records)
    assert (tmp_path / "lora" / "adapter_model.safetensors").exists()
    after = weights(tiny_model_dir)
    assert all(torch.equal(before[k], after[k]) for k in before)
    loaded = load_model(str(tmp_path / "lora"), precision="fp32")
    assert type(loaded.model).__name__.startswith("Peft")
