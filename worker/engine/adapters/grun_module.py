"""The gated ReFT module of GRUN (Ren et al., ACL Findings 2025), as forward hooks.

At each chosen decoder layer the block output h becomes, at the chosen token positions,

    h' = h + σ(g(h)) · Rᵀ(W h + b − R h)        R: r×d with orthonormal rows; W, b: d→r

The gate decides once per sequence and layer, from that layer's hidden state at the last prompt
token (the paper's position), and that decision scales the edit at every position the module
edits, including tokens generated later from the KV cache. Deciding at the prompt keeps the
decision a property of the request: in "every token" mode a gate per token would be asked to
tell forget from retain on template tokens that are identical in both (contradictory labels).

Where the prompt ends is read from the tokens, not passed in, so the objectives, evaluation and
`generate()` need no changes: each prompt `format_prompt` makes ends with the same few tokens
(chat: `<|im_end|>\\n<|im_start|>assistant\\n`; plain: `\\nAnswer: `), and the last occurrence of
such a marker in a row is its last prompt token. A row without a marker (a bare prompt in some
other format) uses its last non-padding token, which is right for a prompt being generated from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from worker.engine.adapters.frozen_prefix import decoder_layers, decoder_of, layer_window
from worker.engine.adapters.grun_prompts import last_prompt_positions, prompt_keys
from worker.engine.errors import OptionError

POSITIONS = ("last_prompt", "prompt", "all")
GATES = ("linear", "mlp")
# How the gate scales the edit outside training: "soft" σ(g(h)) as in training (the paper);
# "hard": at each layer the whole edit where that layer's σ(g(h)) > 0.5, none elsewhere;
# "consensus": one decision per prompt for all the request's layers, open when the mean of its
# layers' σ(g(h)) > 0.5 (read as in training, by a soft pass over the prompt first); open, the
# edit is the trained one (scaled by σ, as in training), closed there is none.
INFERENCE_GATES = ("soft", "hard", "consensus")
# The paper's layers for a 32-layer Llama (20, 25, 31), as fractions of the last layer's index.
PAPER_LAYER_FRACTIONS = (20 / 31, 25 / 31, 1.0)


@dataclass(frozen=True)
class GrunConfig:
    hidden_size: int
    layers: tuple[int, ...]
    rank: int = 4
    gate: str = "mlp"
    positions: str = "last_prompt"
    prompt_markers: tuple[tuple[int, ...], ...] = ()
    inference_gate: str = "soft"

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise OptionError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.inference_gate not in INFERENCE_GATES:
            raise OptionError(
                f"inference_gate must be one of {INFERENCE_GATES}, got {self.inference_gate!r}"
            )
        if self.gate not in GATES:
            raise OptionError(f"gate must be one of {GATES}, got {self.gate!r}")
        if self.rank < 1 or self.rank > self.hidden_size:
            raise OptionError(f"rank must be in 1..{self.hidden_size}, got {self.rank}")
        if not self.layers:
            raise OptionError("GRUN needs at least one layer")

    def to_dict(self) -> dict:
        row = asdict(self)
        row["layers"] = list(self.layers)
        row["prompt_markers"] = [list(m) for m in self.prompt_markers]
        return row

    @classmethod
    def from_dict(cls, row: dict) -> GrunConfig:
        return cls(
            hidden_size=int(row["hidden_size"]),
            layers=tuple(int(i) for i in row["layers"]),
            rank=int(row["rank"]),
            gate=row["gate"],
            positions=row["positions"],
            prompt_markers=tuple(tuple(int(t) for t in m) for m in row["prompt_markers"]),
            # Modules saved before the option existed were soft at inference.
            inference_gate=row.get("inference_gate", "soft"),
        )


def default_layers(num_layers: int) -> tuple[int, ...]:
    """Three layers in the upper part of the network, the paper's 20/25/31-of-32 scaled."""
    return tuple(sorted({round(f * (num_layers - 1)) for f in PAPER_LAYER_FRACTIONS}))


@dataclass
class CallState:
    """What the hooks need to know about the forward call in progress."""

    decoding: bool  # a KV-cache step: positions continue a prompt seen in an earlier call
    valid: torch.Tensor  # (B, T) bool, not padding
    last_prompt: torch.Tensor | None  # (B,) only when not decoding
    prompt_keys: list[tuple[int, ...]] | None = None  # only while a GateLog listens
    soft: bool = False  # every gate as in training (the consensus pre-pass, gate reports)

    def edit_mask(self, positions: str) -> torch.Tensor:
        """(B, T) bool: where a module in `positions` mode edits during a prompt pass."""
        if positions == "all":
            return self.valid
        assert self.last_prompt is not None, "a prompt pass (not decoding) has its last prompt"
        index = torch.arange(self.valid.shape[1], device=self.valid.device)  # (T,)
        if positions == "prompt":
            return self.valid & (index[None, :] <= self.last_prompt[:, None])
        return index[None, :] == self.last_prompt[:, None]


class GateLog:
    """Gate logits (graph attached) of the training forwards since the last gate loss, by the
    prompt they were computed on: the gate loss reuses them instead of running a forward."""

    MAX_CALLS = 8  # a caller that never asks for the gate loss must not hold graphs forever

    def __init__(self) -> None:
        self.calls: list[tuple[CallState, dict[int, torch.Tensor]]] = []

    def add(self, call: CallState, layer: int, logit: torch.Tensor) -> None:
        if not self.calls or self.calls[-1][0] is not call:
            self.calls = [*self.calls[-(self.MAX_CALLS - 1) :], (call, {})]
        self.calls[-1][1][layer] = logit

    def lookup(self, keys: Sequence[tuple[int, ...]], layers: Sequence[int]):
        """(B, L) logits for these prompts, or None when any prompt (or layer) was not seen."""
        found: dict[tuple[int, ...], torch.Tensor] = {}
        for call, logits in reversed(self.calls):
            if call.prompt_keys is None or any(layer not in logits for layer in layers):
                continue
            for row, key in enumerate(call.prompt_keys):
                found.setdefault(key, torch.cat([logits[layer][row] for layer in layers]))
        if any(key not in found for key in keys):
            return None
        return torch.stack([found[key] for key in keys])

    def clear(self) -> None:
        self.calls = []


class GatedReft(nn.Module):
    """One intervention: a gate g and a rank-r LoReFT edit, at one layer."""

    def __init__(self, hidden_size: int, rank: int, gate: str, trainable: bool = True) -> None:
        super().__init__()
        self.rotate = nn.Linear(hidden_size, rank, bias=False)  # R, weight (r, d)
        if trainable:  # keeps R's rows orthonormal while it trains; a loaded R is just a matrix
            orthogonal(self.rotate)  # in place: the same Linear, `weight` now computed from Q
        self.project = nn.Linear(hidden_size, rank)  # W, b
        if gate == "linear":
            self.gate: nn.Linear | nn.Sequential = nn.Linear(hidden_size, 1)
        else:
            self.gate = nn.Sequential(
                nn.Linear(hidden_size, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                nn.Linear(64, 1),
            )  # fmt: skip

    def set_gate_bias(self, logit: float) -> None:
        last = self.gate[-1] if isinstance(self.gate, nn.Sequential) else self.gate
        assert isinstance(last, nn.Linear), "both gates end in a Linear"
        with torch.no_grad():
            last.bias.fill_(logit)

    def edit(self, hidden: torch.Tensor) -> torch.Tensor:
        """Rᵀ(W h + b − R h): (..., d) -> (..., d)."""
        return (self.project(hidden) - self.rotate(hidden)) @ self.rotate.weight


class GrunRequest(nn.Module):
    """The gated module one deletion request trains: one GatedReft per chosen layer."""

    def __init__(self, config: GrunConfig, trainable: bool = True) -> None:
        super().__init__()
        self.config = config
        self.interventions = nn.ModuleDict(
            {
                str(i): GatedReft(config.hidden_size, config.rank, config.gate, trainable)
                for i in config.layers
            }
        )
        self.enabled = True
        # While recording: what each layer's gate read, the hidden state (B, d) at the last
        # prompt token; `logits_from_record` turns it into logits (with grad, even after a
        # no-grad pass).
        self.record: dict[int, torch.Tensor] | None = None
        self.decisions: dict[int, torch.Tensor] = {}  # σ(gate) (B, 1) of the last prompt pass
        self.gate_log: GateLog | None = None  # set while this request trains
        self.consensus: torch.Tensor | None = None  # (B, 1) 0/1 for the prompt pass in progress

    def reft(self, layer: int) -> GatedReft:  # an nn.ModuleDict types its values nn.Module
        return cast(GatedReft, self.interventions[str(layer)])

    def add_edit(self, layer: int, hidden: torch.Tensor, call: CallState) -> torch.Tensor:
        """hidden: (B, T, d) block output -> the same with this request's edit added."""
        reft = self.reft(layer)
        if call.decoding:
            if self.config.positions != "all":
                return hidden  # the prompt's edit lives on in the KV cache
            gate, where = self._decision(layer, hidden.shape[0]), call.valid
        else:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            gate_input = hidden[rows, call.last_prompt]  # (B, d)
            logit = reft.gate(gate_input)  # (B, 1)
            if self.record is not None:
                self.record[layer] = gate_input
            if self.gate_log is not None and logit.requires_grad:
                self.gate_log.add(call, layer, logit)
            gate = torch.sigmoid(logit)
            if not self.training and not call.soft:
                if self.config.inference_gate == "hard":
                    gate = (logit > 0).to(gate.dtype)
                elif self.consensus is not None:
                    # As trained where open: a whole edit (1, not σ ≈ 0.85) garbled answers.
                    gate = gate * self.consensus.to(gate.dtype)
            self.decisions[layer] = gate.detach()
            where = call.edit_mask(self.config.positions)
        scale = gate[:, None, :] * where[..., None]  # (B, T, 1)
        return hidden + (scale * reft.edit(hidden)).to(hidden.dtype)

    def logits_from_record(self, record: dict[int, torch.Tensor]) -> torch.Tensor:
        """(B, layers) gate logits from what a recorded pass's gates read."""
        return torch.cat([self.reft(layer).gate(record[layer]) for layer in self.config.layers], 1)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Follow the KV cache when generation drops finished rows (or repeats a prompt per
        answer): each row keeps the gate decided on its own prompt. On the request, not the
        stack: `model.modules()` yields a request once even when two stacks hold it (a copied
        model), so `generate.select_rows` selects each decision exactly once."""
        self.decisions = {layer: d[indices] for layer, d in self.decisions.items()}

    def published_state(self) -> dict[str, torch.Tensor]:
        """The weights to save, R as its r×d matrix (the orthogonal parametrization's own
        state holds a d×d basis: 3× the size of the whole module, and not needed to run it)."""
        state = {
            name: tensor
            for name, tensor in self.state_dict().items()
            if ".rotate.parametrizations." not in name
        }
        for layer in self.config.layers:
            state[f"interventions.{layer}.rotate.weight"] = self.reft(layer).rotate.weight
        return {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}

    def _decision(self, layer: int, batch: int) -> torch.Tensor:
        decision = self.decisions.get(layer)
        if decision is None or decision.shape[0] != batch:
            raise RuntimeError(
                "GRUN: a KV-cache step without a matching prompt pass (batch sizes differ); "
                "run the prompt through the model first with the same batch"
            )
        return decision


class GrunStack(nn.Module):
    """Every GRUN request on one model, in order; owns the hooks. Lives at `model.grun_stack`."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = nn.ModuleList()
        self.enabled = True
        self.call: CallState | None = None
        self._hooks: dict[int, object] = {}
        self._prompt_hook: object | None = None
        self._soft = False  # inside `soft()`: no consensus pre-pass, every gate soft

    @staticmethod
    def of(model: nn.Module) -> GrunStack:
        """The model's stack, created and hooked in on first use."""
        stack = getattr(model, "grun_stack", None)
        if stack is None:
            stack = GrunStack()
            model.grun_stack = stack
            stack._prompt_hook = decoder_of(model).register_forward_pre_hook(
                stack._begin_call, with_kwargs=True
            )
        return stack

    def in_order(self) -> list[GrunRequest]:  # an nn.ModuleList types its items nn.Module
        return cast(list[GrunRequest], list(self.requests))

    def add(self, model: nn.Module, request: GrunRequest) -> GrunRequest:
        layers = decoder_layers(decoder_of(model))
        for layer in request.config.layers:
            if not 0 <= layer < len(layers):
                raise OptionError(f"GRUN layer {layer} is outside 0..{len(layers) - 1}")
            if layer not in self._hooks:
                self._hooks[layer] = layers[layer].register_forward_hook(self._hook_for(layer))
        self.requests.append(request)
        return request

    def markers(self) -> list[tuple[int, ...]]:
        return sorted({m for r in self.in_order() for m in r.config.prompt_markers})

    def _begin_call(self, decoder, args, kwargs) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        tokens = input_ids if input_ids is not None else kwargs["inputs_embeds"]
        batch, length = tokens.shape[:2]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        decoding = cache is not None and cache.get_seq_length() > 0
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            valid = mask[:, -length:].bool()  # (B, T): the mask also covers cached positions
        else:
            valid = torch.ones(batch, length, dtype=torch.bool, device=tokens.device)
        last_prompt = None
        if not decoding:
            for request in self.in_order():  # a new prompt pass: earlier decisions are stale
                request.decisions = {}
            # Embeddings without ids (rare) cannot show a marker: their last valid token.
            ids = (
                input_ids if input_ids is not None else torch.full_like(valid, -1, dtype=torch.long)
            )
            last_prompt = last_prompt_positions(ids, valid, self.markers())
        keys = None
        if last_prompt is not None and any(r.gate_log is not None for r in self.in_order()):
            keys = prompt_keys(input_ids, valid, last_prompt) if input_ids is not None else None
        if not decoding and not self._soft and input_ids is not None:
            self._decide(decoder, input_ids, valid, last_prompt)
        self.call = CallState(decoding, valid, last_prompt, keys, soft=self._soft)

    def _decide(self, decoder, input_ids, valid, last_prompt) -> None:
        """Consensus requests outside training: their gates over the prompt as in training
        (one soft pass up to their top layer), then one 0/1 decision per row for all layers."""
        deciding = [r for r in self.in_order() if r.enabled and not r.training
                    and r.config.inference_gate == "consensus"]  # fmt: skip
        for request in self.in_order():
            request.consensus = None
        if not deciding or not self.enabled:  # switched off: no edit to decide on
            return
        top = max(layer for r in deciding for layer in r.config.layers)
        cut = int(last_prompt.max()) + 1  # the gates read the last prompt token: causal
        with self.soft(), self.recording(deciding) as records, layer_window(decoder, 0, top + 1):
            decoder(input_ids=input_ids[:, :cut], attention_mask=valid[:, :cut].long(),
                    use_cache=False)  # fmt: skip
            for r, record in zip(deciding, records, strict=True):
                gates = torch.sigmoid(r.logits_from_record(record))
                r.consensus = (gates.float().mean(1, keepdim=True) > 0.5).float()  # (B, 1)

    @contextmanager
    def soft(self):
        """Inside: every gate as in training, whatever the requests' inference gate."""
        was, self._soft = self._soft, True
        try:
            yield
        finally:
            self._soft = was

    def _hook_for(self, layer: int):
        def hook(block, args, output):
            if not self.enabled or self.call is None:
                return output
            hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d)
            for request in self.requests:
                if request.enabled and layer in request.config.layers:
                    hidden = request.add_edit(layer, hidden, self.call)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    @contextmanager
    def recording(self, requests: Sequence[GrunRequest]) -> Iterator[list[dict[int, torch.Tensor]]]:
        """Inside: each request's `record` collects its gate logits by layer; yields them."""
        records: list[dict[int, torch.Tensor]] = [{} for _ in requests]
        for request, record in zip(requests, records, strict=True):
            request.record = record
        try:
            yield records
        finally:
            for request in requests:
                request.record = None
