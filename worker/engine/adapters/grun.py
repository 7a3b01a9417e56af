"""GRUN as an adapter: a gated ReFT module per deletion request, base weights frozen.

Training a request: the objective's loss with the module on, plus `auxiliary_loss`:
λ_g · BCE(σ(g(h)), 1 on forget prompts, 0 on retain prompts). The reference model is the same
model with this request's module switched off. Earlier requests on the model (loaded from their
folders) stay active and frozen, so a model version is "base + an ordered list of modules".

A saved request is a small folder: `grun.safetensors` + `grun.json` (its config); the lead's
manifest `obliviate.json` names the base (a model, or the previous request's folder) and its
hash, and `load_model(folder)` rebuilds the whole stack.

Defaults (measured on the built-in model, benchmarks/results/grun_cost.md): the paper's rank 4,
MLP gate, λ_g = 10, last prompt token, and its layers 20/25/31 of 32 scaled to depth (19/23/29
of SmolLM2's 30). Two departures for requests trained in a few steps on a narrow retain set:
gates start nearly closed (0.05, not PyTorch's ≈0.5: at 0.5 the edit hit retain answers as
hard as forget answers before the gate could tell them apart) and 4 general questions per step
join the negatives (without them the gate learned "not the retain customer" and opened on
unrelated questions). The learning rate is the caller's (`UnlearnConfig.lr`): with NPO, 8
steps, 4e-3 (the paper's) took the forget answers' probability from 0.63 to 0.01 keeping 82% of
the retain probability; 1e-2 kept 89% but forgot less (0.15), its gates still undecided.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from worker.engine.adapters.base import Adapter, named_trainable, register_adapter
from worker.engine.adapters.frozen_prefix import (
    DEFAULT_MAX_BYTES,
    FrozenPrefix,
    config_of,
    decoder_layers,
    decoder_of,
)
from worker.engine.adapters.grun_gates import (
    gate_logits,
    gate_report,
    gate_values_of_ids,
    summarize_gates,
)
from worker.engine.adapters.grun_module import (
    GateLog,
    GrunConfig,
    GrunRequest,
    GrunStack,
    default_layers,
)
from worker.engine.adapters.grun_prompts import (
    PromptPool,
    length_groups,
    prompt_keys,
    prompt_markers,
)
from worker.engine.data import IGNORE_INDEX, Example, collate
from worker.engine.errors import OptionError

WEIGHTS = "grun.safetensors"
CONFIG = "grun.json"
FORMAT_VERSION = 1
MAX_REPORTED_PROMPTS = 64  # per kind, in run.json's gate report

# Unrelated general questions: a gate that fires on these hurts every user, not just the
# data subject. Written by us; the gate report's "general" set when the caller gives none.
GENERAL_QUESTIONS = (
    "What is the capital of France?",
    "How many days are there in a leap year?",
    "What is the boiling point of water at sea level in Celsius?",
    "Who wrote Romeo and Juliet?",
    "What is the largest planet in the solar system?",
    "How do I convert kilometres to miles?",
    "What gas do plants absorb from the air?",
    "What is 12 multiplied by 8?",
    "Which ocean lies between Africa and Australia?",
    "What does a dictionary contain?",
    "Name a primary colour.",
    "What is the chemical symbol for gold?",
    "How many legs does a spider have?",
    "What language is spoken in Brazil?",
    "What is the freezing point of water in Fahrenheit?",
    "Explain what a noun is.",
)


@dataclass
class GrunOptions:
    layers: tuple[int, ...] | None = None  # None: default_layers(depth)
    rank: int = 4
    gate: str = "mlp"  # the paper's default: d→256→64→1 with ReLU
    # The gate decides once, at the last prompt token; "all" applies its edit at every position,
    # generated tokens included. Measured on the demo ticket (IdkNLL, 48 steps): the answer
    # becomes a whole refusal ("I don't have that information.") with 0 of 8 facts leaking,
    # where an edit at the last prompt token alone broke the first answer token and the model
    # then recited the fact (issue 19).
    positions: str = "all"
    gate_weight: float = 10.0  # λ_g, docs/engine.md
    # Starting gate value σ(bias) (None: PyTorch's init, σ ≈ 0.5 as in the paper). A gate that
    # starts nearly closed lets the edit hurt retain inputs only once the gate learned them.
    initial_gate: float | None = 0.05
    general_negatives: int = 4  # built-in general questions per step, gate target 0
    # Beyond the objective's batches, per step: other subjects' questions (the retain set's)
    # as gate negatives, so the gate keys on the subject and not on the wording, and the
    # forget records' paraphrased questions as positives (`set_gate_questions`).
    retain_negatives: int = 8
    paraphrase_positives: int = 4
    # Those drawn questions in the chat template and as plain text in turn (one format shift
    # of the robustness probes): a gate trained on chat prompts alone stayed shut on the
    # plain-text question and a quarter of the facts came out there (issue 19).
    plain_prompts: bool = True
    # The hidden states entering the lowest GRUN layer are stored per training sequence and
    # later steps start there (frozen_prefix.py); the store's limit in MiB, 0: off.
    prefix_cache_mb: int = DEFAULT_MAX_BYTES // 2**20
    # Outside training the gates take one decision per prompt for all layers (grun_module's
    # INFERENCE_GATES). Measured on the ticket benchmark (issue 19): the soft gate's 0.2-0.5 on
    # other customers' questions garbled their facts (neighbours' recall kept 0.71-1.04x);
    # a hard gate per layer kept 1.0x on 4 of 5 modules, but layer 19's gate alone opened on
    # 19% of the neighbours' questions (layers 23 and 29 on none) and cost up to 0.58x; the
    # consensus of the layers kept them (benchmarks/results/tickets.md).
    inference_gate: str = "consensus"

    def __post_init__(self) -> None:
        if self.initial_gate is not None and not 0 < self.initial_gate < 1:
            raise OptionError(f"initial_gate must be in (0, 1), got {self.initial_gate}")
        counts = (self.gate_weight, self.general_negatives, self.retain_negatives,
                  self.paraphrase_positives, self.prefix_cache_mb)  # fmt: skip
        if min(counts) < 0:
            raise OptionError(
                "gate_weight, general_negatives, retain_negatives, paraphrase_positives and "
                "prefix_cache_mb must not be negative"
            )


@register_adapter
class GrunAdapter(Adapter):
    name = "grun"
    default_lr = 4e-3  # the paper's; best of 1e-2 / 4e-3 here (benchmarks/results/grun_cost.md)
    saves_module = True

    def __init__(
        self,
        layers: Sequence[int] | None = None,
        rank: int = 4,
        gate: str = "mlp",
        positions: str = "all",
        gate_weight: float = 10.0,
        initial_gate: float | None = 0.05,
        general_negatives: int = 4,
        retain_negatives: int = GrunOptions.retain_negatives,
        paraphrase_positives: int = GrunOptions.paraphrase_positives,
        plain_prompts: bool = GrunOptions.plain_prompts,
        prefix_cache_mb: int = GrunOptions.prefix_cache_mb,
        inference_gate: str = GrunOptions.inference_gate,
        tokenizer=None,
    ) -> None:
        self.options = GrunOptions(
            tuple(layers) if layers else None, rank, gate, positions, gate_weight, initial_gate,
            general_negatives, retain_negatives, paraphrase_positives, plain_prompts,
            prefix_cache_mb, inference_gate,
        )  # fmt: skip
        self.tokenizer = tokenizer
        self.model: nn.Module | None = None
        self.request: GrunRequest | None = None
        self.diagnostic_questions: dict[str, list[str]] = {}
        self.training_gates: dict[str, float] = {}
        # Forget / retain batches of the gate loss that the objective's forwards did not cover.
        self.extra_gate_forwards = 0
        self.pools: dict[str, PromptPool] = {}  # general, retain, paraphrased: drawn each step
        # The prompts the gate loss saw, in order, as token ids: run.json reports their gates.
        self.trained_prompts: dict[str, dict[tuple[int, ...], None]] = {}
        self.prefix: FrozenPrefix | None = None
        self.prefix_stats: dict | None = None

    # --- the adapter protocol -------------------------------------------------------------

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        """Freeze everything on the model (base and earlier requests) and add a new request."""
        if self.tokenizer is None:
            # The markers come from the tokenizer that formats prompts; every model folder
            # load_model reads holds it beside the weights.
            from worker.engine.models import load_tokenizer  # models imports the adapters

            # load_model's models know where they came from: a folder or a hub id.
            self.tokenizer = load_tokenizer(cast(str, model.name_or_path))
        hidden = hidden_size(model)
        depth = len(decoder_layers(decoder_of(model)))
        config = GrunConfig(
            hidden_size=hidden,
            layers=self.options.layers or default_layers(depth),
            rank=self.options.rank,
            gate=self.options.gate,
            positions=self.options.positions,
            prompt_markers=prompt_markers(self.tokenizer),
            inference_gate=self.options.inference_gate,
        )
        model.requires_grad_(False)
        stack = GrunStack.of(model)
        for earlier in stack.in_order():
            earlier.gate_log = None  # frozen now: only the new request's gates are trained
        device = next(model.parameters()).device
        self.request = stack.add(model, GrunRequest(config).to(device))
        if self.options.initial_gate is not None:
            logit = math.log(self.options.initial_gate / (1 - self.options.initial_gate))
            for layer in config.layers:
                self.request.reft(layer).set_gate_bias(logit)
        self.request.requires_grad_(True)
        self.request.gate_log = GateLog()
        self.pools["general"] = self._pool(GENERAL_QUESTIONS)
        lowest = min(config.layers)
        if self.options.prefix_cache_mb and lowest > 0:
            # Everything below this request's lowest layer is frozen: its output never changes.
            max_bytes = self.options.prefix_cache_mb * 2**20
            self.prefix = FrozenPrefix(decoder_of(model), lowest, max_bytes).install()
        self.model = model.train()
        return model

    def _attached(self) -> tuple[nn.Module, GrunRequest]:
        """The model and the request `attach` added: every method below runs after it."""
        assert self.model is not None and self.request is not None, "attach() first"
        return self.model, self.request

    def trainable(self) -> dict[str, nn.Parameter]:
        return named_trainable(self._attached()[0])

    @contextmanager
    def reference(self):
        """The model as it was before this request: this request's module off, earlier on."""
        self.request.enabled = False
        try:
            yield self.model
        finally:
            self.request.enabled = True

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        if merge:
            raise ValueError("a GRUN module cannot be merged into the weights; save it unmerged")
        if self.prefix is not None:  # the run is over: the stored states go
            self.prefix_stats = self.prefix.stats()
            self.prefix.remove()
            self.prefix = None
        save_request(self._attached()[1], Path(folder))

    @staticmethod
    def load(model: nn.Module, folder: Path) -> nn.Module:
        """Add a saved request, frozen and active, on top of the model's existing ones."""
        folder = Path(folder)
        config_path = folder / CONFIG
        if not config_path.is_file():
            raise ValueError(f"{folder} has no {CONFIG}: not a GRUN folder")
        config = GrunConfig.from_dict(json.loads(config_path.read_text())["config"])
        hidden = hidden_size(model)
        if config.hidden_size != hidden:
            raise ValueError(
                f"{folder}: GRUN module for hidden size {config.hidden_size}, model has {hidden}"
            )
        request = GrunRequest(config, trainable=False)
        request.load_state_dict(load_file(folder / WEIGHTS))
        request.requires_grad_(False)
        device = next(model.parameters()).device
        GrunStack.of(model).add(model, request.to(device))
        return model.eval()

    # --- the gate loss and diagnostics ----------------------------------------------------

    def set_gate_questions(self, retain: Sequence[str], paraphrased: Sequence[str]) -> None:
        """Other subjects' questions (gate 0) and the forget records' rewordings (gate 1) the
        gate loss draws from each step, beyond the objective's own batches."""
        for name, questions in (("retain", retain), ("paraphrased", paraphrased)):
            if questions:
                self.pools[name] = self._pool(questions)

    def _pool(self, questions: Sequence[str]) -> PromptPool:
        return PromptPool(self.tokenizer, questions, plain=self.options.plain_prompts)

    def auxiliary_loss(self, forget_batch: Mapping, retain_batch: Mapping | None) -> torch.Tensor:
        """λ_g · BCE of this request's gates, mean over rows and layers: 1 on the forget prompts
        (and a few of their rewordings), 0 on the retain prompts, a few more retain questions
        and a few built-in general questions. The general questions keep the gate shut on
        unrelated inputs when the retain set is narrow (a gate trained only against one other
        customer learns "not that customer" and opens on everything else); the extra retain
        questions make it tell subjects apart rather than wordings."""
        options = self.options
        request = self._attached()[1]
        general = options.general_negatives
        if retain_batch is None and "retain" not in self.pools:
            general = max(general, len(GENERAL_QUESTIONS))  # the only negatives there are
        positives = {"forget": self._batch_gate_logits(forget_batch, "forget")}  # (B_f, L)
        negatives = {}
        if retain_batch is not None:
            negatives["retain"] = self._batch_gate_logits(retain_batch, "retain")  # (B_r, L)
        counts = {"paraphrased": options.paraphrase_positives,
                  "retain_more": options.retain_negatives, "general": general}  # fmt: skip
        drawn = {name: self.pools[name.removesuffix("_more")].draw(count)
                 for name, count in counts.items()
                 if count and name.removesuffix("_more") in self.pools}  # fmt: skip
        if drawn:
            rows = [row for examples in drawn.values() for row in examples]
            logits = self._drawn_gate_logits(rows).split([len(e) for e in drawn.values()])
            for name, part in zip(drawn, logits, strict=True):
                (positives if name == "paraphrased" else negatives)[name] = part
        assert request.gate_log is not None, "attach() gives the request it trains a gate log"
        request.gate_log.clear()
        self.training_gates = {
            name: torch.sigmoid(logits).mean().item()
            for name, logits in {**positives, **negatives}.items()
        }
        logits = torch.cat([*positives.values(), *negatives.values()]).float()
        targets = torch.zeros_like(logits)
        targets[: sum(len(p) for p in positives.values())] = 1.0
        return options.gate_weight * F.binary_cross_entropy_with_logits(logits, targets)

    def _drawn_gate_logits(self, rows: Sequence[Example]) -> torch.Tensor:
        """(N, L) gate logits of the drawn prompts, in their order: a gate pass per group of
        similar lengths (`length_groups`), so the plain prompts are not padded to the chat ones."""
        device = next(self._attached()[1].parameters()).device
        parts, order = [], []
        for group in length_groups([len(row.input_ids) for row in rows]):
            batch = collate([rows[i] for i in group], self.tokenizer.pad_token_id)
            parts.append(
                self._batch_gate_logits({k: v.to(device) for k, v in batch.items()}, "drawn")
            )
            order.extend(group)
        logits = torch.cat(parts)
        return logits[torch.argsort(torch.tensor(order, device=logits.device))]

    def _batch_gate_logits(self, batch: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
        """(B, L) gate logits of a batch: those the objective's forwards already computed on
        the same prompts, else one forward over the prompts, stopped at the top layer."""
        model, request = self._attached()
        input_ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, T)
        first_answer = _first_answers(batch.get("labels"))  # (B,)
        if first_answer is not None:
            keys = prompt_keys(input_ids, mask.bool(), first_answer - 1)
            seen = self.trained_prompts.setdefault(kind, {})
            seen.update((key, None) for key in keys if len(seen) < MAX_REPORTED_PROMPTS)
            assert request.gate_log is not None, "attach() gives the request it trains a gate log"
            logged = request.gate_log.lookup(keys, request.config.layers)
            if logged is not None:
                return logged
            # The gate reads the last prompt token; tokens after it cannot change it (causal).
            cut = int(first_answer.max())
            input_ids, mask = input_ids[:, :cut], mask[:, :cut]
        if kind in ("forget", "retain"):  # the drawn questions never go through the objective
            self.extra_gate_forwards += 1
        return gate_logits(model, [request], input_ids, mask)[:, 0]

    def set_diagnostic_questions(self, questions: Mapping[str, Sequence[str]]) -> None:
        """Question sets (e.g. forget, paraphrased_forget, retain) for run.json's gate report."""
        self.diagnostic_questions = {name: list(qs) for name, qs in questions.items()}

    def edited_layers(self) -> tuple[int, ...]:
        return tuple(self._attached()[1].config.layers)

    def diagnostics(self) -> dict:
        model, request = self._attached()
        report: dict[str, object] = {
            "config": request.config.to_dict(),
            "gate_weight": self.options.gate_weight,
            "requests_on_model": len(GrunStack.of(model).requests),
            "last_training_gates": self.training_gates,
            "gate_loss_extra_forwards": self.extra_gate_forwards,
            "frozen_prefix": self.prefix_stats,
        }
        sets = {"general": list(GENERAL_QUESTIONS), **self.diagnostic_questions}
        gates = gate_report(model, self.tokenizer, sets)
        report["gates"] = gates
        for kind, prompts in self.trained_prompts.items():
            ids = [list(key) for key in prompts]
            values = gate_values_of_ids(model, ids, self.tokenizer.pad_token_id)
            gates[f"trained_{kind}"] = summarize_gates(values)
        return report


def hidden_size(model: nn.Module) -> int:
    """The language model's hidden size (a multimodal config holds it in its text config)."""
    return config_of(model).get_text_config().hidden_size


def _first_answers(labels: torch.Tensor | None) -> torch.Tensor | None:
    """(B,) each row's first answer position when every row is a QA row (a prompt, then its
    answer), else None: a text record is all answer (no prompt), so there is nothing to cut
    to and its gate reads its last token, as `last_prompt_positions` does for a bare text."""
    if labels is None:
        return None
    answers = labels != IGNORE_INDEX  # (B, T)
    first = answers.int().argmax(1)  # (B,)
    return first if bool(answers.any(1).all()) and bool((first > 0).all()) else None


def save_request(request: GrunRequest, folder: Path) -> None:
    save_file(request.published_state(), folder / WEIGHTS)
    payload = {"format_version": FORMAT_VERSION, "config": request.config.to_dict()}
    (folder / CONFIG).write_text(json.dumps(payload, indent=2, sort_keys=True))
