"""Benchmark cells: one method × one adapter × one forget split, unlearned then evaluated.

Each cell's models are cached as a folder (`model/`, `eval.json`) and its table row is stored
with the results (`rows.RowStore`); a finished cell is never recomputed and an interrupted one
resumes its unlearning from the last checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.epochs import epoch_check
from bench.rows import RowStore
from bench.tofu_mini import FORGET_ROWS, default_tofu_dir, fixtures_dir, tofu_mini_records
from domain.choices import ADAPTERS
from worker.engine.adapters import default_lr
from worker.engine.eval.evaluate import EvalOptions, evaluate
from worker.engine.eval.probes import ProbeOptions, run_suite_probes
from worker.engine.eval.report import write_eval
from worker.engine.eval.suites import tofu_suite
from worker.engine.models import load_model
from worker.engine.objectives import LossSettings
from worker.engine.unlearn import UnlearnConfig, unlearn

# The table's methods: one per family that trains on the forget answers (GradDiff), pushes
# them below the reference (NPO) or towards a refusal (IdkNLL); every adapter the engine has.
METHODS = ("graddiff", "npo", "idk")

# The same budget (steps × batch) for the three adapters of a method, each at its own learning
# rate (`adapters.default_lr`: they parameterise the change differently).
# Every probe that costs about one generation pass over its records. Left out, for time only:
# best_of_n (10 sampled answers per question) and relearning (fine-tunes a copy); run them
# on any cell's model with `obliviate eval --probes best_of_n,relearning`.
BENCH_PROBES = (
    "direct,paraphrased_question,no_chat,system_prompt,embedded_question,fill_in_blank,"
    "multiple_choice,quantize_int8,adapter_removal,gate_evasion"
)
# Passes over the forget set at batch 4 forget + 4 retain (500 steps on forget05), measured
# after each; the cell ends on the epoch `epochs.py`'s rule picks. 10: OpenUnlearning's NPO
# budget on TOFU (the earlier table's 2 left GRUN's truth ratios where the target had them).
EPOCHS = 10
BATCH_SIZE = 4


@dataclass
class Cell:
    method: str
    adapter: str
    split: str = "forget05"
    lr: float = 0.0
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    loss: LossSettings = field(default_factory=LossSettings)
    adapter_options: dict = field(default_factory=dict)
    select_epoch: bool = True  # evaluate every epoch and end on the rule's pick (epochs.py)
    check_epochs: int = 1  # epochs between those checks (each costs ~4 min on forget05)
    seed: int = 0  # the unlearning run's batch order (a second seed shows what was luck)

    @property
    def name(self) -> str:
        """method-adapter, plus the learning rate when it is not the adapter's default and the
        seed when it is not 0 (a sweep point gets its own cached folder and table row)."""
        name = f"{self.method}-{self.adapter}"
        if self.lr != default_lr(self.adapter):
            name += f"-lr{self.lr:g}"
        if self.seed:
            name += f"-seed{self.seed}"
        return name if self.check_epochs == 1 else f"{name}-every{self.check_epochs}"

    def __post_init__(self) -> None:
        self.lr = self.lr or default_lr(self.adapter)
        if not 1 <= self.check_epochs <= self.epochs:
            raise ValueError(
                f"checks every {self.check_epochs} epochs do not fit a {self.epochs}-epoch budget"
            )


def default_cells(split: str = "forget05") -> list[Cell]:
    return [Cell(method, adapter, split) for method in METHODS for adapter in ADAPTERS]


def select_cells(
    splits: list[str],
    methods: list[str],
    adapters: list[str],
    lr: float | None = None,
    epochs: int | None = None,
    check_epochs: int = 1,
    seed: int = 0,
) -> list[Cell]:
    """The default cells of these splits, only these methods and adapters (empty: all), at
    learning rate `lr` and with an `epochs` budget if given. An unknown name is refused before
    any work starts."""
    if lr is not None and lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if epochs is not None and not 1 <= epochs <= 100:
        raise ValueError(f"epochs must be between 1 and 100, got {epochs}")
    choices = {"split": (splits, FORGET_ROWS), "method": (methods, METHODS),
               "adapter": (adapters, ADAPTERS)}  # fmt: skip
    for kind, (names, known) in choices.items():
        if unknown := [n for n in names if n not in known]:
            raise ValueError(f"unknown {kind} {unknown[0]!r}; choose from: {', '.join(known)}")
    return [
        Cell(
            cell.method,
            cell.adapter,
            split,
            lr=lr or cell.lr,
            epochs=epochs or cell.epochs,
            check_epochs=check_epochs,
            seed=seed,
        )  # fmt: skip
        for split in splits
        for cell in default_cells(split)
        if (not methods or cell.method in methods) and (not adapters or cell.adapter in adapters)
    ]


def commit_id() -> str:
    """The checkout's commit (asked where this file lives, whatever the working directory)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).parent)  # fmt: skip
    return out.stdout.strip() or "unknown"


def cells_root(split: str) -> Path:
    return fixtures_dir().parent / "tofu-mini-cells" / split


def cell_dir(cell: Cell) -> Path:
    return cells_root(cell.split) / cell.name


def split_records(tofu_dir: Path, split: str) -> tuple[list, list]:
    """forget = the split's rows of TOFU-mini; retain = the rest (what the retain model saw)."""
    everything = tofu_mini_records(tofu_dir)
    n_forget = FORGET_ROWS[split]
    return everything[-n_forget:], everything[:-n_forget]


# New tokens per answer: TOFU-mini's longest answer is 82 tokens of the built-in tokenizer (mean
# 35), so 100 lets every answer come out whole while a rambling model stops at half the
# default 200 (ROUGE-L recall only counts the reference's words).
MAX_NEW_TOKENS = 100


@dataclass
class BenchOptions:
    tofu_dir: Path = field(default_factory=default_tofu_dir)
    eval: EvalOptions | None = None  # default: the full suite, read from tofu_dir
    probes: ProbeOptions = field(
        default_factory=lambda: ProbeOptions(limit=16, max_new_tokens=MAX_NEW_TOKENS)
    )
    probe_names: str = BENCH_PROBES
    # Retraining's wall time for "cost % of retrain", when the retain model's own build was
    # slowed by other work on the machine (None: that build's measured wall time).
    retrain_s: float | None = None
    # Cells evaluated side by side, each in a one-thread process (1: in this process). On 2
    # CPU cores it gains little (see run.run_cells); on one GPU the processes would only queue.
    eval_workers: int = 1

    def __post_init__(self) -> None:
        if self.retrain_s is not None and self.retrain_s <= 0:
            raise ValueError(f"retraining time must be positive, got {self.retrain_s} s")
        if self.eval_workers < 1:
            raise ValueError(f"eval workers must be at least 1, got {self.eval_workers}")
        self.tofu_dir = Path(self.tofu_dir)
        self.eval = self.eval or EvalOptions(
            data_dir=str(self.tofu_dir), max_new_tokens=MAX_NEW_TOKENS
        )


def evaluate_with_probes(model: Path, split: str, reference, options: BenchOptions) -> dict:
    """The tofu suite, plus the probes on its first forget and retain questions, in one eval.json
    (what `obliviate eval --probes` writes)."""
    assert options.eval is not None  # filled by BenchOptions.__post_init__
    loaded = load_model(str(model), device=options.eval.device, precision=options.eval.precision)
    result = evaluate(loaded, "tofu", split, reference, options.eval)
    result["probes"] = run_suite_probes(
        loaded, "tofu", split, options.probe_names, data_dir=str(options.tofu_dir),
        options=options.probes,
    )  # fmt: skip
    return result


def eval_forget_ratios(retain_eval: Path) -> list[float]:
    """The retain model's forget-set truth ratios, from its evaluation."""
    reference = json.loads(retain_eval.read_text())
    return reference["sets"]["forget"]["per_example"]["truth_ratio"]


def selection_check(cell: Cell, retain_ratios: list[float], options: BenchOptions):
    """The per-epoch check of `epochs.py`, on the suite's forget and retain questions, against
    the retain model's forget-set truth ratios."""
    suite = tofu_suite(cell.split, options.tofu_dir)
    return epoch_check(suite.sets["forget"].records, suite.sets["retain"].records, retain_ratios)


def unlearn_cell(
    cell: Cell, target: Path, options: BenchOptions, target_hash: str, retain_ratios: list[float]
) -> dict:
    """The cell's unlearning run (resumed or reused when its folder has one); its run.json.

    A folder unlearned from another build of the target (its TARGET file holds that build's
    sha256) is discarded, so a row never pairs these fixtures with another build's model."""
    folder = cell_dir(cell)
    model_folder = folder / "model"
    marker = folder / "TARGET"
    if marker.is_file() and marker.read_text() != target_hash:
        shutil.rmtree(folder)
    if (model_folder / "run.json").is_file():
        return json.loads((model_folder / "run.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(target_hash)
    forget, retain = split_records(options.tofu_dir, cell.split)
    cfg = UnlearnConfig(
        output=str(model_folder), model=str(target), method=cell.method,
        adapter=cell.adapter, adapter_options=cell.adapter_options, epochs=cell.epochs,
        lr=cell.lr, batch_size=cell.batch_size, loss=cell.loss, seed=cell.seed, resume=True,
        check_every=math.ceil(len(forget) / cell.batch_size) * cell.check_epochs
        if cell.select_epoch else 0,
    )  # fmt: skip
    check = selection_check(cell, retain_ratios, options) if cell.select_epoch else None
    return unlearn(cfg, forget, retain, make_check=check)


def selection_summary(run: dict) -> dict | None:
    """Per-epoch checks of a run, the step the rule picked and the checks' own time (part of
    the run's wall time, though not of its training)."""
    stopping = run.get("stopping") or {}
    checks = stopping.get("checks") or []
    if not checks:
        return None
    return {
        "checks": checks,
        "picked_step": stopping.get("restored_from") or checks[-1]["step"],
        "seconds": sum(check.get("seconds", 0.0) for check in checks),
    }


def evaluate_cell(
    cell: Cell, reference_eval: Path, options: BenchOptions, store: RowStore, fixtures: dict
) -> dict:
    """Evaluate an unlearned cell against the retain model's eval.json; store its table row
    (`fixtures`: the fingerprints of the models it was measured against)."""
    folder = cell_dir(cell)
    run = json.loads((folder / "model" / "run.json").read_text())
    clock = time.perf_counter()
    result = evaluate_with_probes(folder / "model", cell.split, reference_eval, options)
    write_eval(folder / "eval.json", result)
    row = {
        "cell": asdict(cell),
        "name": cell.name,
        "summary": result["summary"],
        "probes": result["probes"]["summary"],
        "cost": run["cost"],
        "selection": selection_summary(run),
        "eval_seconds": time.perf_counter() - clock,
        "commit": commit_id(),
        "fixtures": fixtures,
    }
    store.write_cell(row)
    return row
