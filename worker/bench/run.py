"""`obliviate bench tofu-mini`: fixtures, cells, table and plot, each step cached.

from worker.bench.run import run_tofu_mini
run_tofu_mini(splits=["forget05"])
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from worker.bench.cells import Cell, default_cells, run_cell
from worker.bench.report import plot, table_rows
from worker.bench.tofu_mini import (
    FixtureRecipe,
    build_model_fixture,
    default_tofu_dir,
    tofu_mini_records,
)
from worker.engine.eval.evaluate import EvalOptions, evaluate
from worker.engine.eval.report import write_eval

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def fixture_eval(model: Path, split: str, tofu_dir: Path, reference: Path | None, options) -> Path:
    """eval.json of a fixture model on a split (cached beside the model)."""
    path = model.parent / f"{model.name}-eval-{split}.json"
    if not path.is_file():
        write_eval(path, evaluate(str(model), "tofu", split, reference, options))
    return path


def commit_id() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_tofu_mini(
    splits: Sequence[str] = ("forget05",),
    cells: Sequence[Cell] | None = None,
    tofu_dir: Path | None = None,
    recipe: FixtureRecipe | None = None,
    command: str = "obliviate bench tofu-mini",
    log: Callable[[str], None] = print,
) -> Path:
    """Build what is missing, run every cell, and write benchmarks/results/tofu_mini.md."""
    tofu_dir = tofu_dir or default_tofu_dir()
    recipe = recipe or FixtureRecipe()
    options = EvalOptions(data_dir=str(tofu_dir))
    log("fixture: target model")
    target = build_model_fixture("target", tofu_mini_records(tofu_dir), recipe)
    sections = []
    for split in splits:
        log(f"fixture: retain model without {split}")
        retain = build_model_fixture(f"retain-{split}", tofu_mini_records(tofu_dir, split), recipe)
        retain_eval = fixture_eval(retain, split, tofu_dir, None, options)
        target_eval = fixture_eval(target, split, tofu_dir, retain_eval, options)
        rows = []
        for cell in cells or default_cells(split):
            if cell.split != split:
                continue
            log(f"cell {split} {cell.name}")
            started = time.perf_counter()
            rows.append(run_cell(cell, target, retain_eval, tofu_dir, options))
            log(f"  done in {time.perf_counter() - started:.0f} s")
        sections.append((split, rows, target_eval, retain_eval, retain))
    return write_results(sections, command)


def fixture_row(name: str, eval_path: Path) -> dict:
    summary = json.loads(eval_path.read_text())["summary"]
    if name == "retain":
        # The retain model is the reference itself: the KS test of a sample against itself
        # has p = 1, so Forget Quality is 1 by definition.
        summary["forget_quality"] = 1.0
    return {"name": name, "summary": summary}


def write_results(sections, command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["# TOFU-mini: unlearning methods × adapters on SmolLM2-135M-Instruct", "",
             f"Command: `{command}`  ", f"Commit: {commit_id()}", ""]  # fmt: skip
    for split, rows, target_eval, retain_eval, retain in sections:
        retrain_s = json.loads((retain / "run.json").read_text())["cost"]["wall_time_s"]
        target, retain_row = fixture_row("target", target_eval), fixture_row("retain", retain_eval)
        lines += [
            f"## {split}",
            "",
            f"Retraining (the retain model's fine-tuning): {retrain_s:.0f} s",
            "",
        ]
        lines += table_rows(rows, target, retrain_s)
        lines += ["", "Hyper-parameters per cell:", ""]
        lines += [f"- {r['name']}: {json.dumps(r['cell'], sort_keys=True)}" for r in rows]
        figure = RESULTS / f"tofu_mini_{split}.png"
        plot(rows, target, retain_row, figure)
        lines += ["", f"![utility vs forget quality]({figure.name})", ""]
    path = RESULTS / "tofu_mini.md"
    path.write_text("\n".join(lines) + "\n")
    return path
