"""`obliviate bench tofu-mini` end to end on a tiny model and tiny TOFU files: fixtures, a cell,
the table and the plot, then a re-run that reuses every cached step."""

import json

import pytest
from typer.testing import CliRunner

from bench import cells as cells_module
from bench import epochs as epochs_module
from bench.cells import BenchOptions, Cell, cell_dir, select_cells
from bench.curve import run_curve
from bench.epochs import selection_score
from bench.report import target_lines
from bench.rows import RowStore
from bench.run import run_tofu_mini
from bench.tofu_mini import FixtureRecipe, fixtures_dir
from cli.main import app
from domain.records import DataError
from tests.tofu_files import write_tofu_mini
from worker.engine.eval import EvalOptions
from worker.engine.eval.probes import ProbeOptions
from worker.engine.models import hash_folder


def first_table(markdown: str) -> list[dict]:
    """The rows of the first markdown table, as {column header: cell text}."""
    lines = markdown[markdown.index("\n| ") + 1 :].split("\n\n")[0].splitlines()
    header, _, *body = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(header, row, strict=True)) for row in body]


@pytest.fixture
def bench_options(tmp_path):
    tofu = write_tofu_mini(tmp_path / "tofu")
    return BenchOptions(
        tofu,
        EvalOptions(data_dir=str(tofu), max_new_tokens=4, precision="fp32"),
        ProbeOptions(limit=2, max_new_tokens=4),
        probe_names="direct,adapter_removal",
    )


def test_bench_writes_table_and_plot_then_rewrites_them_from_stored_rows(
    tiny_model_dir, bench_options, tmp_path, monkeypatch
):
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cell = Cell("npo", "lora", epochs=1, batch_size=32)
    results = tmp_path / "results"
    table = run_tofu_mini(["forget05"], [cell], bench_options, recipe, results_dir=results)

    text = table.read_text()
    rows = {row["model"]: row for row in first_table(text)}
    assert set(rows) == {"target", "retain", "npo-lora"}
    assert rows["npo-lora"]["Forget Quality"] != "n/c"  # against the retain model's eval.json
    assert float(rows["npo-lora"]["cost % of retrain"]) > 0
    assert "adapter_removal" in text and (results / "tofu_mini_forget05.png").stat().st_size > 0
    assert (fixtures_dir() / "retain-forget05-eval-forget05-no-reference.json").is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a stored row was measured again")

    for name in ("unlearn", "evaluate"):
        monkeypatch.setattr(cells_module, name, must_not_run)
    monkeypatch.setattr("bench.tofu_mini.finetune", must_not_run)
    # A new machine: no cached model at all, only the rows committed with the results.
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "new-home"))
    again = run_tofu_mini(["forget05"], [], bench_options, recipe, results_dir=results)
    # No cell asked for: the table still shows every stored cell.
    assert again.read_text().split("Commit:")[1] == text.split("Commit:")[1]
    assert not fixtures_dir().exists()


def test_rows_measured_against_other_fixtures_are_measured_again(
    tiny_model_dir, bench_options, tmp_path
):
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cell = Cell("idk", "grun", epochs=1, batch_size=32)
    results = tmp_path / "results"
    store = RowStore(results / "tofu_mini" / "forget05")
    run_tofu_mini(["forget05"], [cell], bench_options, recipe, results_dir=results)
    built = store.fingerprints()
    assert built == store.cell("idk-grun")["fixtures"]
    # The fingerprint is remembered beside the weights, and it is the weights' own.
    assert built["target"] == hash_folder(fixtures_dir() / "target")
    assert (fixtures_dir() / "target" / "HASH").read_text() == built["target"]

    # Rows of another machine's build, consistent among themselves, one of them a sweep point.
    other = {"target": "another build", "retain": "another build"}
    row = store.cell("idk-grun")
    for name in ("target", "retain"):
        store.write_fixture(name, store.fixture(name) | {"fixtures": other})
    store.write_cell(row | {"fixtures": other})
    store.write_cell(row | {"fixtures": other, "name": "idk-grun-lr0.1"})
    (cell_dir(cell) / "TARGET").write_text("another build")  # its cached model is that build's
    unlearned_at = (cell_dir(cell) / "model" / "run.json").stat().st_mtime_ns
    assert [row["name"] for row in store.cells()] == ["idk-grun", "idk-grun-lr0.1"]

    # A new cell needs this machine's fixtures: they differ, so every row is measured again.
    more = [cell, Cell("npo", "grun", epochs=1, batch_size=32)]
    run_tofu_mini(["forget05"], more, bench_options, recipe, results_dir=results)
    assert store.fingerprints() == built
    assert [row["name"] for row in store.cells()] == ["idk-grun", "npo-grun"]
    assert (cell_dir(cell) / "model" / "run.json").stat().st_mtime_ns != unlearned_at


def test_cells_evaluated_side_by_side_match_an_evaluation_in_process(
    tiny_model_dir, bench_options, tmp_path
):
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cells = [Cell("npo", "lora", epochs=1, batch_size=32), Cell("idk", "grun", epochs=1)]
    bench_options.eval_workers = 2
    results = tmp_path / "results"
    store = RowStore(results / "tofu_mini" / "forget05")
    run_tofu_mini(["forget05"], cells, bench_options, recipe, results_dir=results)
    in_pool = [store.cell(cell.name) for cell in cells]
    assert all(row["summary"]["forget_quality"] is not None for row in in_pool)

    (store.folder / "cells" / "npo-lora.json").unlink()  # evaluate it again, in this process
    target_eval = fixtures_dir() / "target-eval-forget05.json"
    target_eval.unlink()  # as on a new machine; the target's stored row does not need it
    bench_options.eval_workers = 1
    table = run_tofu_mini(["forget05"], cells, bench_options, recipe, results_dir=results)
    assert not target_eval.exists()
    again = store.cell("npo-lora")
    assert again["cost"] == in_pool[0]["cost"]  # the unlearned model was reused
    assert again["summary"] == pytest.approx(in_pool[0]["summary"], rel=1e-4)
    assert {"npo-lora", "idk-grun"} <= {row["model"] for row in first_table(table.read_text())}


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--method", "sgd", "graddiff"),
        ("--retrain-seconds", "0", "positive"),
        ("--lr", "-1", "positive"),
        ("--eval-workers", "0", "at least 1"),
        ("--epochs", "0", "between 1 and 100"),
        ("--check-epochs", "11", "do not fit a 10-epoch budget"),
    ],
)
def test_cli_refuses_bad_options_before_any_work(tmp_path, option, value, named):
    result = CliRunner().invoke(
        app, ["bench", "tofu-mini", option, value, "--tofu-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert value in result.output and named in result.output
    assert not fixtures_dir().exists()


def bench_row(method: str, adapter: str, utility: float, fq: float, wall: float) -> dict:
    summary = {"model_utility": utility, "forget_quality": fq}
    # 10 s of it were per-epoch checks: not training time
    selection = {"checks": [{"step": 5}], "picked_step": 5, "seconds": 10.0}
    return {"name": f"{method}-{adapter}", "cell": {"method": method, "adapter": adapter},
            "summary": summary, "cost": {"wall_time_s": wall + 10.0},
            "selection": selection}  # fmt: skip


def test_grun_targets_are_checked_against_the_rows():
    target = {"summary": {"model_utility": 0.30}}
    rows = [
        bench_row("npo", "full", 0.25, 1e-4, 400.0),
        bench_row("npo", "grun", 0.295, 0.2, 90.0),  # 0.98 × utility, 0.225 × full, 9% retrain
        bench_row("idk", "grun", 0.20, 0.3, 130.0),  # forgets, but keeps 0.67 of the utility
    ]
    lines = "\n".join(target_lines(rows, target, retrain_s=1000.0))
    assert "npo-grun: Forget Quality 2.00e-01 (aim ≥ 0.05) with Model Utility 0.98" in lines
    assert "idk-grun: Forget Quality 3.00e-01 (aim ≥ 0.05) with Model Utility 0.67" in lines
    assert lines.count(": met") == 3 and lines.count("**missed**") == 1
    assert "idk-grun: wall time" not in lines  # no idk-full row to compare with
    assert "npo-grun: wall time 0.23 × npo-full (aim ≤ 0.25): met" in lines
    assert "cheapest GRUN cell, npo-grun, costs 9.0% of retraining (aim ≤ 10%): met" in lines


def test_a_cell_ends_on_the_epoch_its_rule_picks(tiny_model_dir, bench_options, tmp_path,
                                                 monkeypatch):  # fmt: skip
    # Make the rule prefer the first epoch, whatever it measured: the saved model must then be
    # that epoch's, not the last one trained.
    scores = iter([3.0, 2.0, 1.0])
    monkeypatch.setattr(epochs_module, "selection_score", lambda fq, kept: next(scores))
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cell = Cell("npo", "lora", epochs=3, batch_size=100, lr=1e-2)  # 2 steps per epoch
    results = tmp_path / "results"
    table = run_tofu_mini(["forget05"], [cell], bench_options, recipe, results_dir=results)

    row = RowStore(results / "tofu_mini" / "forget05").cell(cell.name)
    checks = row["selection"]["checks"]
    assert [c["step"] for c in checks] == [2, 4, 6] and row["selection"]["picked_step"] == 2
    assert checks[0]["forget_truth_ratio"] != pytest.approx(checks[-1]["forget_truth_ratio"])
    # The evaluation scored the picked epoch's weights (the same questions, the same metric).
    assert row["summary"]["forget_truth_ratio"] == pytest.approx(
        checks[0]["forget_truth_ratio"], rel=1e-3
    )
    text = table.read_text()
    assert first_table(text)[-1]["epoch"] == "1/3"
    assert f"- {cell.name} (FQ / retain kept, epoch 1 on): " in text


def test_the_selection_rule_prefers_forgetting_only_where_retain_utility_is_kept():
    kept, lost = selection_score(0.01, 0.96), selection_score(0.9, 0.94)
    assert kept > lost  # a forgetful epoch that lost utility never wins
    assert selection_score(0.2, 0.95) > selection_score(0.1, 1.2)  # among kept: higher FQ
    assert selection_score(0.9, 0.5) < selection_score(0.0, 0.9)  # none kept: keeps the most


def test_a_sweep_point_is_its_own_cell():
    default, sweep = (
        select_cells(["forget05"], ["npo"], ["grun"]),
        select_cells(["forget05"], ["npo"], ["grun"], lr=1e-2),
    )
    assert [c.name for c in default] == ["npo-grun"]
    assert [(c.name, c.lr) for c in sweep] == [("npo-grun-lr0.01", 1e-2)]
    assert [c.epochs for c in default] == [10]  # the declared budget, checked per epoch
    assert [c.epochs for c in select_cells(["forget05"], ["npo"], ["grun"], epochs=5)] == [5]


def test_a_curve_run_checks_every_n_epochs_against_stored_ratios_without_a_retain_model(
    tiny_model_dir, bench_options, tmp_path
):
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cell = Cell("npo", "lora", epochs=4, batch_size=100, lr=1e-2, check_epochs=2)
    stored = tmp_path / "retain_forget_ratios.json"
    stored.write_text(json.dumps({"retain_model_sha256": "ab" * 32, "ratios": [1.0, 0.8, 1.2]}))
    path = run_curve(cell, bench_options, stored, "obliviate bench tofu-mini --curve", recipe,
                     results_dir=tmp_path / "results")  # fmt: skip

    assert path.name == "tofu_mini_curve_forget05_npo-lora-lr0.01-every2.md"
    rows = first_table(path.read_text())
    assert [(row["epoch"], row["step"]) for row in rows] == [("2", "4"), ("4", "8")]
    assert [row["picked"] for row in rows].count("yes") == 1
    assert all(0.0 <= float(row["Forget Quality"]) <= 1.0 for row in rows)
    assert not (fixtures_dir() / "retain-forget05").exists()


def stored_retain_row(results) -> None:
    """What a table run commits for its retain model (tofu_mini/<split>/retain.json)."""
    RowStore(results / "tofu_mini" / "forget05").write_fixture("retain", {
        "name": "retain", "commit": "abc1234", "fixtures": {"target": "cd" * 32, "retain": "ab"},
        "summary": {"model_utility": 0.3, "forget_quality": 1.0},
        "probes": {"direct": {"status": "ok", "forget": 0.0, "retain": 0.5},
                   "adapter_removal": {"status": "skipped"}},
        "cost": {"wall_time_s": 100.0, "peak_memory_mb": 1.0, "trainable_parameters": 10},
    })  # fmt: skip


def test_an_evaluated_curve_sets_the_picked_model_beside_the_target_and_stored_retain_row(
    tiny_model_dir, bench_options, tmp_path
):
    recipe = FixtureRecipe(model=str(tiny_model_dir), epochs=1, batch_size=32)
    cell = Cell("npo", "grun", epochs=2, batch_size=100, check_epochs=2, seed=1)
    stored = tmp_path / "retain_forget_ratios.json"
    stored.write_text(json.dumps({"retain_model_sha256": "ab" * 32, "ratios": [1.0, 0.8, 1.2]}))
    results = tmp_path / "results"
    stored_retain_row(results)
    path = run_curve(cell, bench_options, stored, "cmd", recipe, results_dir=results,
                     evaluate=True)  # fmt: skip

    assert path.name == "tofu_mini_curve_forget05_npo-grun-seed1-every2.md"
    text = path.read_text()
    final = text[text.index("## Final evaluation") :]
    rows = {row["model"]: row for row in first_table(final)}
    assert list(rows) == ["target", "retain", "npo-grun-seed1-every2"]
    for name in ("target", "npo-grun-seed1-every2"):  # scored against the stored ratios
        assert 0.0 <= float(rows[name]["Forget Quality"]) <= 1.0
        assert rows[name]["privleak"] == "n/c"
        assert float(rows[name]["Model Utility"]) >= 0.0  # the final evaluation's own
    assert rows["retain"]["Model Utility"] == "0.300"  # the stored row, as committed
    assert rows["npo-grun-seed1-every2"]["epoch"] == "2/2"  # picked / budget (before: "1/2")
    assert "another target build" in final and "Targets (issue 19)" in final
    assert "| npo-grun-seed1-every2 | " in final.split("Robustness probes")[1]


def test_an_evaluated_curve_without_a_stored_retain_row_is_refused_before_any_work(
    tmp_path, bench_options
):
    stored = tmp_path / "retain_forget_ratios.json"
    stored.write_text(json.dumps({"retain_model_sha256": "ab", "ratios": [1.0, 0.8, 1.2]}))
    with pytest.raises(DataError, match="no stored retain-model row"):
        run_curve(Cell("npo", "grun"), bench_options, stored, "cmd", FixtureRecipe("never-loaded"),
                  results_dir=tmp_path / "results", evaluate=True)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"retain_model_sha256": "ab", "ratios": [1.0]}, "3 forget questions"),
        ({"retain_model_sha256": "ab", "ratios": "1.0"}, "'ratios'"),
        ({"ratios": [1.0, 1.0, 1.0]}, "'retain_model_sha256'"),
    ],
)
def test_a_curve_refuses_stored_ratios_that_do_not_fit(tmp_path, bench_options, content, named):
    stored = tmp_path / "retain_forget_ratios.json"
    stored.write_text(json.dumps(content))
    recipe = FixtureRecipe(model="never-loaded")
    with pytest.raises((DataError, ValueError), match=named):
        run_curve(Cell("npo", "grun"), bench_options, stored, "cmd", recipe)
