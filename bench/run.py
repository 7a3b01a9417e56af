"""`obliviate bench tofu-mini`: fixtures, cells, table and plot; models cached, rows stored.

from bench.run import run_tofu_mini
run_tofu_mini(splits=["forget05"])
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import torch

from bench import RESULTS
from bench.cells import (
    BenchOptions,
    Cell,
    commit_id,
    default_cells,
    eval_forget_ratios,
    evaluate_cell,
    evaluate_with_probes,
    unlearn_cell,
)
from bench.epochs import SELECTION_RULE
from bench.report import epoch_rows, plot, probe_rows, table_rows, target_lines
from bench.rows import RowStore
from bench.tofu_mini import (
    FixtureRecipe,
    build_model_fixture,
    tofu_mini_records,
)
from worker.engine.eval.report import write_eval
from worker.engine.models import folder_hash


def fixture_eval(model: Path, split: str, reference: Path | None, options: BenchOptions) -> Path:
    """eval.json (with probes) of a fixture model on a split, cached beside the model (one file
    with a reference, another without: the same model's Forget Quality is n/c without)."""
    unreferenced = "-no-reference" if reference is None else ""
    path = model.parent / f"{model.name}-eval-{split}{unreferenced}.json"
    if not path.is_file():
        write_eval(path, evaluate_with_probes(model, split, reference, options))
    return path


def run_tofu_mini(
    splits: Sequence[str] = ("forget05",),
    cells: Sequence[Cell] | None = None,
    options: BenchOptions | None = None,
    recipe: FixtureRecipe | None = None,
    command: str = "obliviate bench tofu-mini",
    log: Callable[[str], None] = print,
    results_dir: Path = RESULTS,
) -> Path:
    """Measure what has no stored row yet, then write tofu_mini.md and one plot per split into
    results_dir. When every row is stored, no model is built or loaded."""
    options = options or BenchOptions()
    recipe = recipe or FixtureRecipe()
    sections = []
    for split in splits:
        store = RowStore(results_dir / "tofu_mini" / split)
        chosen = [c for c in (default_cells(split) if cells is None else cells) if c.split == split]
        if not store.complete([cell.name for cell in chosen]):
            target, retain_eval, fingerprints = prepare_fixtures(split, store, recipe, options, log)
            todo = [cell for cell in chosen if store.cell(cell.name) is None]
            run_cells(todo, target, retain_eval, options, store, fingerprints, log)
        # The cells asked for first, then every other stored one (earlier sweep points).
        rows = [store.cell(cell.name) for cell in chosen]
        rows += [row for row in store.cells() if row["name"] not in {c.name for c in chosen}]
        sections.append((split, rows, store.fixture("target"), store.fixture("retain")))
    return write_results(sections, command, results_dir, setup_lines(recipe, options), options)


def prepare_fixtures(
    split: str, store: RowStore, recipe: FixtureRecipe, options: BenchOptions, log
) -> tuple[Path, Path, dict]:
    """Build (or reuse) the target and retain models and store their rows. Returns the target's
    folder, the retain model's eval.json and both models' fingerprints.

    Stored rows measured against other fixtures (another machine's build) are dropped, so that
    every row of a table compares against the same models."""
    tofu_dir = options.tofu_dir
    log("fixture: target model")
    target = build_model_fixture("target", tofu_mini_records(tofu_dir), recipe)
    log(f"fixture: retain model without {split}")
    retain = build_model_fixture(f"retain-{split}", tofu_mini_records(tofu_dir, split), recipe)
    fingerprints = {"target": folder_hash(target), "retain": folder_hash(retain)}
    if store.fingerprints() not in (None, fingerprints):
        log(f"{store.folder} was measured against other fixtures: measuring every row again")
        store.clear()
    retain_eval = fixture_eval(retain, split, None, options)  # every cell's Forget Quality
    for name, model, reference in [("target", target, retain_eval), ("retain", retain, None)]:
        if store.fixture(name) is None:  # the target's evaluation serves only its own row
            eval_path = fixture_eval(model, split, reference, options)
            store.write_fixture(
                name, fixture_row(name, model, eval_path) | {"fixtures": fingerprints}
            )
    return target, retain_eval, fingerprints


def run_cells(
    cells: Sequence[Cell],
    target: Path,
    retain_eval: Path,
    options: BenchOptions,
    store: RowStore,
    fingerprints: dict,
    log,
) -> None:
    """Measure these cells and store their rows, `options.eval_workers` cells at a time.

    Unlearning runs alone, one cell after the other: its wall time is a result. Evaluations,
    whose time is not, then run side by side in one-thread processes. On 2 CPU cores that gains
    1.3x on generation but little on the whole evaluation, which is mostly teacher-forced
    scoring: two forget05 cells took 1050 s side by side, 510-660 s each alone.
    """
    workers = options.eval_workers
    ratios = eval_forget_ratios(retain_eval)  # every cell's checks score against these
    for start in range(0, len(cells), workers):
        batch = cells[start : start + workers]
        for cell in batch:
            log(f"cell {cell.split} {cell.name}: unlearning")
            run = unlearn_cell(cell, target, options, fingerprints["target"], ratios)
            log(f"  unlearned in {run['cost']['wall_time_s']:.0f} s")
        log(f"evaluating {', '.join(cell.name for cell in batch)}")
        started = time.perf_counter()
        evaluate = partial(evaluate_cell, reference_eval=retain_eval, options=options,
                           store=store, fixtures=fingerprints)  # fmt: skip
        if len(batch) == 1:  # a lone cell (or a last one) gets every thread of this process
            list(map(evaluate, batch))
        else:
            spawn = multiprocessing.get_context("spawn")  # a fork would copy torch's thread pool
            with ProcessPoolExecutor(len(batch), spawn, torch.set_num_threads, (1,)) as pool:
                list(pool.map(evaluate, batch))
        log(f"  evaluated in {time.perf_counter() - started:.0f} s")


def fixture_row(name: str, model: Path, eval_path: Path) -> dict:
    """A fixture's table row: its evaluation and its fine-tuning cost."""
    result = json.loads(eval_path.read_text())
    cost = json.loads((model / "run.json").read_text())["cost"]
    summary = result["summary"]
    if name == "retain":
        # The retain model is the reference itself: the KS test of a sample against itself
        # has p = 1, so Forget Quality is 1 by definition.
        summary["forget_quality"] = 1.0
    return {"name": name, "summary": summary, "probes": result["probes"]["summary"], "cost": cost,
            "commit": commit_id()}  # fmt: skip


def setup_lines(recipe: FixtureRecipe, options: BenchOptions) -> list[str]:
    probes = options.probes
    assert options.eval is not None  # filled by BenchOptions.__post_init__
    return [
        f"Fixtures: {recipe.model} fine-tuned {recipe.epochs} epochs, lr {recipe.lr}, batch "
        f"{recipe.batch_size}, seed {recipe.seed}, bf16 autocast; target on TOFU-mini (800 QA), "
        "retain model on TOFU-mini minus the split.  ",
        f"Evaluation: the whole `tofu` suite, greedy, {options.eval.max_new_tokens} new tokens. "
        f"Probes ({options.probe_names}) on the first {probes.limit} forget and retain "
        f"questions, {probes.max_new_tokens} new tokens.  ",
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores; wall times are each run's own "
        "(a cell's unlearning over its whole budget without its per-epoch checks, a fixture's "
        "fine-tuning).",
        "",
    ]


def write_results(
    sections, command: str, results_dir: Path, setup: list[str], options: BenchOptions
) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# TOFU-mini: unlearning methods × adapters on SmolLM2-135M-Instruct", "",
             f"Command: `{command}`  ", f"Commit: {commit_id()}  ", *setup]  # fmt: skip
    for split, rows, target, retain_row in sections:
        measured = retain_row["cost"]["wall_time_s"]
        retrain_s = options.retrain_s or measured
        lines += [
            f"## {split}",
            "",
            f"Retraining (the retain model's fine-tuning): {retrain_s:.0f} s",
        ]
        if options.retrain_s:
            lines[-1] += (f", given with --retrain-seconds; this build of the retain model took "
                          f"{measured:.0f} s while other work shared the cores")  # fmt: skip
        lines += [""]
        lines += table_rows(rows, target, retain_row, retrain_s)
        if notes := [f"- {r['name']}: {r['cost_note']}" for r in rows if r.get("cost_note")]:
            lines += ["", *notes]
        lines += ["", "Robustness probes: leak rate on forget questions (on retain ones).", ""]
        lines += probe_rows([target, retain_row, *rows], options.probe_names.split(","))
        if curves := epoch_rows(rows):
            lines += ["", f"Per-epoch checks ({SELECTION_RULE}):", "", *curves]
        lines += ["", "Targets (issues 19 and 14):", "", *target_lines(rows, target, retrain_s)]
        lines += ["", "Hyper-parameters per cell:", ""]
        lines += [
            f"- {r['name']} (commit {r['commit']}): {json.dumps(r['cell'], sort_keys=True)}"
            for r in rows
        ]
        figure = results_dir / f"tofu_mini_{split}.png"
        plot(rows, target, retain_row, figure)
        lines += ["", f"![utility vs forget quality]({figure.name})", ""]
    path = results_dir / "tofu_mini.md"
    path.write_text("\n".join(lines) + "\n")
    return path
