"""A TOFU-mini cell's forgetting curve, scored against stored retain-model ratios (issue 19).

The full table needs the retain model (about 40 min to build and evaluate on 2 CPU cores) for
every row's Forget Quality and privacy leak. The per-epoch checks need only its 200 forget
truth ratios, which are committed (`tofu_mini/<split>/retain_forget_ratios.json`, with the
retain model's sha256). A curve run builds (or reuses) the target, unlearns one cell with a
check every `check_epochs` epochs against those ratios, and writes the checks as a table:
the cheaper way to try a method's budget or learning rate before it earns a table row.

With `evaluate`, the picked model and the target also get the final evaluation (the whole
`tofu` suite and the probes), shown beside the stored retain-model row: Forget Quality against
the stored ratios, Model Utility against the target's. Privacy leak stays n/c (it needs the
retain model's per-answer losses). It writes no table row either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import RESULTS
from bench.cells import (
    BenchOptions,
    Cell,
    cell_dir,
    commit_id,
    evaluate_with_probes,
    selection_summary,
    unlearn_cell,
)
from bench.epochs import SELECTION_RULE
from bench.report import probe_rows, table_rows, target_lines
from bench.rows import RowStore
from bench.run import fixture_eval, fixture_row
from bench.tofu_mini import FixtureRecipe, build_model_fixture, tofu_mini_records
from domain.records import DataError
from worker.engine.eval import metrics
from worker.engine.eval.report import write_eval
from worker.engine.eval.suites import tofu_suite
from worker.engine.models import folder_hash


def stored_ratios_path(split: str, results_dir: Path = RESULTS) -> Path:
    return results_dir / "tofu_mini" / split / "retain_forget_ratios.json"


def load_stored_ratios(path: Path, questions: int) -> dict:
    """The stored ratios file, checked: one number per forget question, and the model they
    came from."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(str(path), "no stored retain-model ratios here") from None
    except json.JSONDecodeError as error:
        raise DataError(str(path), f"is not valid JSON ({error.msg})") from None
    ratios = stored.get("ratios") if isinstance(stored, dict) else None
    if not isinstance(ratios, list) or not all(isinstance(r, int | float) for r in ratios):
        raise DataError(str(path), "needs a list of numbers", field="ratios")
    if len(ratios) != questions:
        raise DataError(str(path), f"holds {len(ratios)} ratios for {questions} forget questions",
                        field="ratios")  # fmt: skip
    if not isinstance(stored.get("retain_model_sha256"), str):
        raise DataError(str(path), "needs the retain model's sha256", field="retain_model_sha256")
    return stored


def run_curve(
    cell: Cell,
    options: BenchOptions,
    ratios_path: Path,
    command: str,
    recipe: FixtureRecipe | None = None,
    log: Callable[[str], None] = print,
    results_dir: Path = RESULTS,
    evaluate: bool = False,
) -> Path:
    """Unlearn `cell` with its checks scored against the stored ratios; write its curve (and,
    with `evaluate`, the final evaluation of its picked model beside the target's)."""
    forget = tofu_suite(cell.split, options.tofu_dir).sets["forget"].records
    stored = load_stored_ratios(ratios_path, len(forget))
    retain_row = RowStore(results_dir / "tofu_mini" / cell.split).fixture("retain")
    if evaluate and retain_row is None:  # refused before hours of work, not after
        raise DataError(str(results_dir / "tofu_mini" / cell.split), "holds no stored retain-"
                        "model row (retain.json) to set the final evaluation beside")  # fmt: skip
    log("fixture: target model")
    records = tofu_mini_records(options.tofu_dir)
    target = build_model_fixture("target", records, recipe or FixtureRecipe())
    log(f"cell {cell.split} {cell.name}: unlearning, a check every {cell.check_epochs} epochs")
    run = unlearn_cell(cell, target, options, folder_hash(target), stored["ratios"])
    path = results_dir / f"tofu_mini_curve_{cell.split}_{cell.name}.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    text = curve_markdown(cell, run, stored, ratios_path, command)
    if evaluate:
        assert retain_row is not None
        log(f"cell {cell.split} {cell.name}: final evaluation of the picked model and the target")
        rows = final_rows(cell, run, target, stored["ratios"], options)
        text += final_markdown(rows, retain_row, folder_hash(target), stored, options)
    path.write_text(text, encoding="utf-8")
    return path


def final_rows(cell: Cell, run: dict, target: Path, ratios: list, options: BenchOptions):
    """The target's and the picked model's evaluations (cached beside each model) as table rows,
    Forget Quality scored against the stored retain-model ratios."""
    model = cell_dir(cell) / "model"
    cell_eval = model.parent / "eval-no-reference.json"
    if not cell_eval.is_file():
        write_eval(cell_eval, evaluate_with_probes(model, cell.split, None, options))
    target_eval = fixture_eval(target, cell.split, None, options)
    rows = []
    for name, folder, path in (("target", target, target_eval), (cell.name, model, cell_eval)):
        row = fixture_row(name, folder, path)
        own = json.loads(path.read_text())["sets"]["forget"]["per_example"]["truth_ratio"]
        row["summary"]["forget_quality"] = metrics.forget_quality(own, ratios)
        rows.append(row)
    rows[1] |= {"cell": asdict(cell), "selection": selection_summary(run)}
    return rows


def final_markdown(
    rows: list[dict], retain_row: dict, target_hash: str, stored: dict, options
) -> str:
    target, cell = rows
    same = retain_row["fixtures"]["target"] == target_hash
    ratios_from = stored["retain_model_sha256"]
    other_retain = (
        ""
        if retain_row["fixtures"]["retain"] == ratios_from
        else f" Its retain model ({retain_row['fixtures']['retain'][:12]}…) is another build than "
        f"the one whose ratios score Forget Quality ({ratios_from[:12]}…): same recipe and data."
    )
    retrain_s = options.retrain_s or retain_row["cost"]["wall_time_s"]
    lines = [
        "",
        "## Final evaluation of the picked model",
        "",
        "The whole `tofu` suite and the probes, as in `tofu_mini.md`. The retain row is the "
        f"stored one (commit {retain_row['commit']}), measured against "
        + ("this same target build." if same else
           f"another target build ({retain_row['fixtures']['target'][:12]}…, this one "
           f"{target_hash[:12]}…).")
        + other_retain
        + " Forget Quality: against the stored ratios; privacy leak n/c (needs the retain "
        "model's per-answer losses).",
        "",
        *table_rows([cell], target, retain_row, retrain_s),
        "",
        "Robustness probes: leak rate on forget questions (on retain ones).",
        "",
        *probe_rows([target, retain_row, cell], options.probe_names.split(",")),
        "",
        "Targets (issue 19):",
        "",
        *target_lines([cell], target, retrain_s),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def curve_markdown(cell: Cell, run: dict, stored: dict, ratios_path: Path, command: str) -> str:
    selection = selection_summary(run)
    if selection is None:
        raise ValueError(f"{cell.name}: the run recorded no checks")
    steps_per_epoch = run["stopping"]["checks"][0]["step"] // cell.check_epochs
    lines = [
        f"# TOFU-mini {cell.split}: {cell.name}, checked every {cell.check_epochs} epochs",
        "",
        f"Command: `{command}`  ",
        f"Commit: {commit_id()}  ",
        f"Cell: {cell.method} + {cell.adapter}, lr {cell.lr:g}, batch {cell.batch_size} forget + "
        f"{cell.batch_size} retain, budget {cell.epochs} epochs ({steps_per_epoch} steps each).  ",
        f"Forget Quality against the stored truth ratios of a retain model "
        f"(`{ratios_path.name}`, retain model sha256 {stored['retain_model_sha256'][:12]}…, "
        f"its forget TR score and answer probability in that file).  ",
        f"Unlearning wall time {run['cost']['wall_time_s']:.0f} s, of which the checks "
        f"{selection['seconds']:.0f} s.",
        "",
        "| epoch | step | Forget Quality | forget TR score | forget prob | retain kept | picked |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in selection["checks"]:
        picked = "yes" if check["step"] == selection["picked_step"] else ""
        lines.append(
            f"| {check['step'] // steps_per_epoch} | {check['step']} | "
            f"{check['forget_quality']:.2e} | {check['forget_truth_ratio']:.3f} | "
            f"{check['forget_prob']:.3f} | {check['retain_kept']:.3f} | {picked} |"
        )
    lines += ["", f"Selection rule: {SELECTION_RULE}.", ""]
    return "\n".join(lines)
