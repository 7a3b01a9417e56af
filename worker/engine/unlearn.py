"""Unlearning: one objective (what to minimise) × one adapter (which parameters change).

`unlearn` checks the data and the method before any model is loaded, then runs the shared
recipe (`recipe.execute`): each step draws a seeded forget batch and a retain batch from its
own stream, asks the objective for its loss, and adds the adapter's auxiliary loss if it has
one (GRUN's gate term).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from domain.progress import Progress
from domain.records import DataError, QARecord, Record, hash_records, load_records
from worker.engine.adapters import default_lr
from worker.engine.data import Example, encode_qa, encode_record
from worker.engine.errors import OptionError
from worker.engine.models import DEFAULT_MODEL, LoadedModel
from worker.engine.objectives import LossInputs, LossSettings, Objective, get_objective
from worker.engine.objectives.reference import ReferenceValues
from worker.engine.objectives.refusals import refusals_for
from worker.engine.recipe import RunSpec, execute
from worker.engine.stopping import evaluated, leak_check
from worker.engine.train import (
    TrainConfig,
    batch_indices,
    make_batch,
    step_generator,
)

# Offsets that give the retain batches and the refusal choices their own seeded streams,
# independent of the forget batches (and of the global RNG).
RETAIN_STREAM = 1_000
REFUSAL_STREAM = 2_000


@dataclass
class UnlearnConfig:
    output: str
    forget: str | None = None  # records file; or pass the records to `unlearn`
    retain: str | None = None
    model: str = DEFAULT_MODEL
    method: str = "npo"  # a name in OBJECTIVES
    adapter: str = "full"  # a name in ADAPTERS
    adapter_options: dict = field(default_factory=dict)  # e.g. {"rank": 8} for lora
    epochs: int = 5  # passes over the forget set
    steps: int | None = None  # overrides epochs
    lr: float | None = None  # None: the adapter's own (`adapters.default_lr`)
    batch_size: int = 4  # forget records per step, and as many retain records
    max_length: int = 256
    seed: int = 0
    loss: LossSettings = field(default_factory=LossSettings)
    refusals: str | None = None  # idk / idkdpo: a file of refusal answers; None: built-in list
    # The stopping rule: every check_every steps the forget questions are asked; the run stops
    # once each probe's leak rate is at most its limit here (e.g. {"direct": 0.0}).
    stop_leak_rate: dict[str, float] | None = None
    stop_neighbours_kept: float = 0.9  # ...and the retain records keep this share of their facts
    check_every: int = 0
    # Reference values (NPO, IdkDPO, KL retain, RMU) are computed once per sequence and kept
    # up to this many MiB (objectives/reference.py); 0: computed at every step.
    reference_cache_mb: int = 1024
    merge: bool = False  # LoRA: save a merged standalone model instead of the adapter
    device: str | None = None
    precision: str | None = None
    overwrite: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):  # from JSON (the service, a saved run.json)
            self.loss = LossSettings(**self.loss)
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise OptionError(f"steps must be at least 1, got {self.steps}")
        if self.lr is None:
            self.lr = default_lr(self.adapter)
        if self.lr <= 0:
            raise OptionError(f"lr must be positive, got {self.lr}")
        if self.reference_cache_mb < 0:
            raise OptionError(f"reference_cache_mb must not be negative: {self.reference_cache_mb}")


def record_key(record: Record) -> tuple[str, ...]:
    if isinstance(record, QARecord):
        return (record.question.strip(), record.answer.strip())
    return (record.text.strip(),)


def describe(record: Record) -> str:
    text = record.question if isinstance(record, QARecord) else record.text
    return repr(text if len(text) <= 60 else text[:57] + "...")


def warm_up_batches(n_forget: int, n_retain: int, batch_size: int) -> list[tuple[list, list]]:
    """(forget rows, retain rows) batches that hold every forget and every retain example at
    least once: the reference values a run can ask for (they are stored per sequence)."""
    chunks = max(math.ceil(n_forget / batch_size), math.ceil(n_retain / batch_size), 1)
    rows = lambda n, k: [(k * batch_size + i) % n for i in range(batch_size)] if n else []  # noqa: E731
    return [(rows(n_forget, k), rows(n_retain, k)) for k in range(chunks)]


def check_no_overlap(forget: Sequence[Record], retain: Sequence[Record]) -> None:
    """Training a record both ways is a contradiction, not a setting: refuse it."""
    retain_index = {record_key(r): i for i, r in enumerate(retain)}
    for index, record in enumerate(forget):
        if record_key(record) in retain_index:
            raise DataError(
                "forget",
                f"{describe(record)} also appears in the retain set as record "
                f"{retain_index[record_key(record)]}; remove it from one of them",
                index,
            )


def check_data(
    objective: Objective, settings: LossSettings, forget: Sequence[Record], retain
) -> None:
    if not forget:
        raise DataError("forget", "holds no records: there is nothing to unlearn")
    if objective.needs_retain and settings.alpha and not retain:
        raise DataError(
            "retain",
            f"method {objective.name!r} has a retain term and needs a retain set "
            "(or set the retain weight alpha to 0)",
        )
    if objective.needs_refusals:
        for index, record in enumerate(forget):
            if not isinstance(record, QARecord):
                raise DataError(
                    "forget", f"method {objective.name!r} needs QA records", index, "question"
                )
    if retain:
        check_no_overlap(forget, retain)


def resolve_settings(objective: Objective, settings: LossSettings) -> LossSettings:
    """Fill the objective's default beta so run.json records the value actually used."""
    if settings.beta is None and objective.default_beta is not None:
        return replace(settings, beta=objective.default_beta)
    return settings


def hash_refusals(refusals: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(refusals).encode()).hexdigest()


def load_data(cfg: UnlearnConfig, forget, retain) -> tuple[list[Record], list[Record] | None]:
    if forget is None:
        if cfg.forget is None:
            raise DataError("forget", "no forget set given (a file or records)")
        forget = load_records(cfg.forget)
    if retain is None and cfg.retain is not None:
        retain = load_records(cfg.retain)
    return list(forget), (list(retain) if retain is not None else None)


def pick_refusals(refusals: Sequence[str], count: int, seed: int) -> list[str]:
    """One refusal per forget record for the whole run, from its own seeded stream. Fixed per
    record (not drawn anew each step) so that a (question, refusal) sequence recurs every epoch:
    the frozen prefix and the reference values computed for it are then reused (issue 14)."""
    generator = step_generator(seed + REFUSAL_STREAM, 0)
    choice = torch.randint(len(refusals), (count,), generator=generator).tolist()
    return [refusals[i] for i in choice]


@dataclass
class UnlearnData:
    forget: list[Record]
    retain: list[Record] | None  # also drawn when only the adapter uses it (GRUN's gate)
    refusals: list[str]  # empty unless the method trains towards refusals

    def hashes(self) -> dict[str, str]:
        hashes = {"forget": hash_records(self.forget)}
        if self.retain:
            hashes["retain"] = hash_records(self.retain)
        if self.refusals:
            hashes["refusals"] = hash_refusals(self.refusals)
        return hashes


def diagnostic_questions(data: UnlearnData, limit: int | None = 64) -> dict[str, list[str]]:
    """Forget, paraphrased forget and retain questions (at most `limit` of each), for the
    adapter's gate report and gate loss."""
    qa_forget = [r for r in data.forget if isinstance(r, QARecord)]
    return {
        "forget": [r.question for r in qa_forget][:limit],
        "paraphrased_forget": [r.paraphrased_question for r in qa_forget if r.paraphrased_question][
            :limit
        ],
        "retain": [r.question for r in data.retain or [] if isinstance(r, QARecord)][:limit],
    }


def step_loss_factory(cfg: UnlearnConfig, objective: Objective, settings, data: UnlearnData):
    """`make_step_loss(loaded, adapter)` for `execute`: seeded batches -> objective loss."""
    stream_seed = {"forget": cfg.seed, "retain": cfg.seed + RETAIN_STREAM}

    def make_step_loss(loaded, adapter):
        tokenizer, device = loaded.tokenizer, loaded.device
        pad_id = tokenizer.pad_token_id
        forget = [encode_record(tokenizer, r, cfg.max_length) for r in data.forget]
        retain = [encode_record(tokenizer, r, cfg.max_length) for r in data.retain or []]
        adapter.set_diagnostic_questions(diagnostic_questions(data))
        questions = diagnostic_questions(data, limit=None)
        adapter.set_gate_questions(questions["retain"], questions["paraphrased_forget"])
        store = ReferenceValues(cfg.reference_cache_mb * 2**20) if cfg.reference_cache_mb else None
        edited_layers = adapter.edited_layers()  # fixed once attached

        def draw(examples: list[Example], stream: str, step: int) -> dict:
            indices = batch_indices(len(examples), cfg.batch_size, stream_seed[stream], step)
            return make_batch(examples, indices, pad_id, device)

        refused = []  # each forget question with its refusal answer, in forget order
        if data.refusals:
            answers = pick_refusals(data.refusals, len(data.forget), cfg.seed)
            refused = [
                encode_qa(tokenizer, record.question, answer, cfg.max_length)
                for record, answer in zip(data.forget, answers, strict=True)
            ]

        def step_loss(step: int):
            inputs = LossInputs(
                model=loaded.model,
                reference=adapter.reference,
                forget=draw(forget, "forget", step),
                retain=draw(retain, "retain", step) if retain else None,
                settings=settings,
                # The same rows as the forget batch (same stream), with refusal answers.
                forget_refusal=draw(refused, "forget", step) if refused else None,
                seed=cfg.seed,
                reference_values=store,
                edited_layers=edited_layers,
            )
            # A parametrized weight (GRUN's orthogonal R) is computed once for the step's
            # forwards and backward, not at every access (two per layer and forward).
            with parametrize.cached():
                output = objective.loss(inputs)
                auxiliary = adapter.auxiliary_loss(inputs.forget, inputs.retain)
            loss, metrics = output.loss, dict(output.metrics)
            if auxiliary is not None:
                metrics["auxiliary"] = auxiliary.item()
                loss = loss + auxiliary
            batches = [inputs.forget, inputs.retain, inputs.forget_refusal]
            tokens = sum(int(b["attention_mask"].sum()) for b in batches if b is not None)
            return loss, tokens, metrics

        def warm_reference() -> None:
            """Every reference value the run can ask for, computed while the model still is the
            reference (before the first update): the full adapter then keeps no second copy."""
            with loaded.autocast():
                for f, r in warm_up_batches(len(forget), len(retain), cfg.batch_size):
                    objective.loss(LossInputs(
                        model=loaded.model, reference=adapter.reference,
                        forget=make_batch(forget, f, pad_id, device),
                        retain=make_batch(retain, r, pad_id, device) if retain else None,
                        settings=settings,
                        forget_refusal=make_batch(refused, f, pad_id, device) if refused else None,
                        seed=cfg.seed, reference_values=store,
                        edited_layers=edited_layers,
                    ))  # fmt: skip

        warm = store is not None and adapter.reference_needs_copy
        if warm and objective.uses_reference(settings):
            evaluated(loaded, warm_reference)
        adapter.settle_reference(stored=warm and store.unstored == 0)
        step_loss.reference_values = store  # its hits and size, for run.json and the tests
        return step_loss

    return make_step_loss


def unlearn(
    cfg: UnlearnConfig,
    forget: Sequence[Record] | None = None,
    retain: Sequence[Record] | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    loaded=None,
    make_check: Callable[[LoadedModel], Callable[[int], dict]] | None = None,
) -> dict:
    """Make `cfg.model` forget `forget` while keeping `retain`; write `cfg.output`.

    Records given here take precedence over the files named in `cfg`. Everything is checked
    before the model loads, but what needs the loaded model (RMU's layer against the
    adapter's layers). `make_check` replaces the stopping rule's leak check (every
    `cfg.check_every` steps; a benchmark's own selection rule). Returns the run info also
    written to run.json (config, data hashes, cost)."""
    objective = get_objective(cfg.method)
    settings = resolve_settings(objective, cfg.loss)
    forget, retain = load_data(cfg, forget, retain)
    check_data(objective, settings, forget, retain)
    refusals = refusals_for(cfg.refusals) if objective.needs_refusals else []
    data = UnlearnData(forget, retain or None, refusals)
    steps_per_epoch = math.ceil(len(forget) / cfg.batch_size)
    steps = cfg.steps or cfg.epochs * steps_per_epoch
    assert cfg.lr is not None, "UnlearnConfig.__post_init__ fills in the adapter's default"
    run = RunSpec(
        kind="unlearn",
        model=cfg.model,
        output=Path(cfg.output),
        adapter=cfg.adapter,
        adapter_options=cfg.adapter_options,
        needs_reference=objective.uses_reference(settings),
        train=TrainConfig(
            steps=steps,
            lr=cfg.lr,
            seed=cfg.seed,
            checkpoint_every=steps_per_epoch,
            check_every=cfg.check_every,
        ),
        config={**asdict(cfg), "loss": asdict(settings), "steps": steps},
        data_hashes=data.hashes(),
        merge=cfg.merge,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        device=cfg.device,
        precision=cfg.precision,
        make_check=make_check
        or (
            partial(
                leak_check,
                records=forget,
                limits=cfg.stop_leak_rate,
                neighbours=retain or (),
                min_kept=cfg.stop_neighbours_kept,
                refusals=refusals,
            )
            if cfg.stop_leak_rate
            else None
        ),
    )
    return execute(
        run,
        step_loss_factory(cfg, objective, settings, data),
        on_progress=on_progress,
        should_stop=should_stop,
        loaded=loaded,
    )
