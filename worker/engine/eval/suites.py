"""Evaluation suites: which records are scored, and which answer counts as the true one.

`tofu`: a forget split with its paraphrased and perturbed answers, `retain_perturbed`,
`real_authors_perturbed`, `world_facts_perturbed` and the matching holdout split (never-trained
authors, the non-members for MIA). `synthetic`: the built-in customers (forget = the last N
trained customers, retain = the other trained ones, holdout = customers never trained on).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from domain.records import DataError, QARecord, load_qa_records
from worker.engine.synthetic import synthetic_dataset

TOFU_DIR_ENV = "OBLIVIATE_TOFU_DIR"
# The repository sits next to the shared folder: <root>/main (this repo), <root>/shared/data/tofu.
DEFAULT_TOFU_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "tofu"
TOFU_SPLIT = re.compile(r"forget(01|05|10)")
SYNTHETIC_SPLIT = re.compile(r"forget(\d+)")


@dataclass(frozen=True)
class EvalSet:
    name: str  # forget, retain, real_authors, world_facts, holdout
    records: list[QARecord]
    source: str  # the file it came from, or how it was generated
    # The answer the truth ratio holds against the perturbed ones: TOFU uses the paraphrased
    # answer on its own authors and the answer itself on real authors and world facts.
    true_field: str = "paraphrased_answer"
    generate: bool = True  # greedy answers for ROUGE and fluency (not needed on holdout)


@dataclass(frozen=True)
class Suite:
    name: str
    split: str
    sets: dict[str, EvalSet]  # always forget, retain, holdout; tofu adds the two utility sets


def tofu_dir(data_dir: str | Path | None = None) -> Path:
    """--data-dir, else $OBLIVIATE_TOFU_DIR, else ../shared/data/tofu next to the repository."""
    folder = Path(data_dir or os.environ.get(TOFU_DIR_ENV) or DEFAULT_TOFU_DIR).resolve()
    if not folder.is_dir():
        raise DataError(
            str(folder),
            f"TOFU data folder not found; pass --data-dir or set {TOFU_DIR_ENV}",
        )
    return folder


def _check_fields(
    records: list[QARecord], source: str, *, paraphrased: bool = False, perturbed: bool = False
) -> None:
    for index, record in enumerate(records):
        if paraphrased and not record.paraphrased_answer:
            raise DataError(
                source, "missing (the truth ratio needs it)", index, "paraphrased_answer"
            )
        if perturbed and not record.perturbed_answer:
            raise DataError(source, "missing (the truth ratio needs it)", index, "perturbed_answer")


def _load(folder: Path, name: str, limit: int | None, **needs: bool) -> tuple[list, str]:
    path = folder / name
    records = load_qa_records(path)[:limit]
    _check_fields(records, str(path), **needs)
    return records, str(path)


def tofu_suite(
    split: str = "forget05", data_dir: str | Path | None = None, limit: int | None = None
) -> Suite:
    """`limit` keeps the first N records of every set (quick runs; not comparable numbers)."""
    match = TOFU_SPLIT.fullmatch(split)
    if not match:
        raise DataError("tofu", f"unknown split {split!r}; use forget01, forget05 or forget10")
    folder = tofu_dir(data_dir)
    full = dict(paraphrased=True, perturbed=True)
    options = dict(paraphrased=False, perturbed=True)
    sets = {}
    for name, file, needs, true_field, generate in [
        ("forget", f"{split}_perturbed.json", full, "paraphrased_answer", True),
        ("retain", "retain_perturbed.json", full, "paraphrased_answer", True),
        ("real_authors", "real_authors_perturbed.json", options, "answer", True),
        ("world_facts", "world_facts_perturbed.json", options, "answer", True),
        ("holdout", f"holdout{match.group(1)}.json", {}, "answer", False),
    ]:
        records, source = _load(folder, file, limit, **needs)
        sets[name] = EvalSet(name, records, source, true_field, generate)
    return Suite("tofu", split, sets)


def synthetic_suite(
    split: str = "forget1",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    *,
    n_customers: int = 20,
    n_holdout: int = 5,
    seed: int = 0,
) -> Suite:
    """The built-in customers: from `write_synthetic` files in data_dir, else generated here.

    split `forgetN`: the last N trained customers are the forget set (generated data only).
    """
    full = dict(paraphrased=True, perturbed=True)
    if data_dir is not None:
        folder = Path(data_dir)
        loaded = {
            name: _load(folder, f"{name}.jsonl", limit, **(full if name != "holdout" else {}))
            for name in ("forget", "retain", "holdout")
        }
    else:
        match = SYNTHETIC_SPLIT.fullmatch(split)
        if not match:
            raise DataError("synthetic", f"unknown split {split!r}; use forgetN (N customers)")
        data = synthetic_dataset(n_customers, n_holdout, seed).splits(int(match.group(1)))
        origin = f"synthetic_dataset(n_customers={n_customers}, n_holdout={n_holdout}, seed={seed})"
        loaded = {
            name: (data[name][:limit], f"{origin}.splits({match.group(1)})[{name!r}]")
            for name in ("forget", "retain", "holdout")
        }
    sets = {
        name: EvalSet(name, records, source, generate=name != "holdout")
        for name, (records, source) in loaded.items()
    }
    return Suite("synthetic", split, sets)


SUITES = {"tofu": tofu_suite, "synthetic": synthetic_suite}


def load_suite(
    name: str, split: str | None = None, data_dir: str | Path | None = None, limit=None
) -> Suite:
    if name not in SUITES:
        raise DataError("suite", f"unknown suite {name!r}; use {' or '.join(SUITES)}")
    split = split or ("forget05" if name == "tofu" else "forget1")
    return SUITES[name](split, data_dir, limit)
