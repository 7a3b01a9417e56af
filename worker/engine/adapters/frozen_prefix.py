"""Run a decoder over a window of its layers, and skip the frozen layers below a trainable one.

`FrozenPrefix` (issue 14): when nothing below decoder layer `start` can change during a run
(GRUN: the base and earlier requests are frozen, the new request edits at layers ≥ start), the
hidden state entering layer `start` is a constant of the input sequence. The first training
forward over a sequence stores it; every later forward over the same sequence (the next epoch,
the reference pass, the gate loss) starts at layer `start` from the stored state. On the
built-in model with GRUN's default layers (19, 23, 29 of 30) a step then runs 11 of 30 layers.

A sequence is keyed by its non-padding tokens and where they start: with right padding (every
training batch) positions and causal attention make a valid token's hidden state independent of
the padding, so a stored state fits any batch the sequence is drawn into. Pad positions get
zeros; no loss reads them. Only training-mode forwards without a KV cache use the store:
generation (the stopping check, the evaluation) runs the whole model as usual.

Memory is bounded by `max_bytes`: past it, new sequences are not stored and are computed
whole, as without the store (hidden size × tokens × 4 bytes each in fp32: ~230 kB for a
100-token sequence of SmolLM2-135M, so the 1 GiB default holds ~4,500 such sequences).

There is no library hook for "start the forward at layer k" (transformers' decoders loop over
`self.layers`), so the window swaps `decoder.layers` for a slice of it for the duration of one
call, and `config.layer_types` with it where the decoder looks layers' kinds up by position
(Gemma 3's sliding-window layers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn
from transformers import PreTrainedConfig

DEFAULT_MAX_BYTES = 2**30


def decoder_of(model: nn.Module) -> nn.Module:
    """The module holding the decoder blocks as `.layers` (LlamaModel, Gemma3TextModel...)."""
    get_decoder = getattr(model, "get_decoder", None)  # transformers models (and peft's) have it
    decoder = get_decoder() if get_decoder is not None else model
    if not isinstance(getattr(decoder, "layers", None), nn.ModuleList):
        raise ValueError(f"GRUN cannot find the decoder layers of {type(model).__name__}")
    return decoder


def decoder_layers(decoder: nn.Module) -> nn.ModuleList:
    """`decoder.layers`, typed: nn.Module's `__getattr__` says `Tensor | Module`."""
    layers = decoder.layers
    assert isinstance(layers, nn.ModuleList), "decoder_of checked it is one"
    return layers


def config_of(module: nn.Module) -> PreTrainedConfig:
    """A transformers model's or decoder's config (peft forwards it), typed: a plain
    attribute, not a submodule, whatever nn.Module's `__getattr__` says."""
    config = module.config
    assert isinstance(config, PreTrainedConfig), "a transformers module carries its config"
    return config


class _Window(NamedTuple):
    """What `_narrow` replaced and `_widen` puts back."""

    layers: nn.ModuleList
    layer_types: list[str] | None  # config.layer_types, on decoders that have it


def _narrow(decoder: nn.Module, start: int, stop: int | None) -> _Window:
    """Make `decoder` run only its current layers[start:stop]; returns what `_widen` restores."""
    config = config_of(decoder)
    saved = _Window(decoder_layers(decoder), getattr(config, "layer_types", None))
    decoder.layers = nn.ModuleList(list(saved.layers)[start:stop])
    if saved.layer_types is not None:
        config.layer_types = saved.layer_types[start:stop]
    return saved


def _widen(decoder: nn.Module, saved: _Window) -> None:
    decoder.layers = saved.layers
    if saved.layer_types is not None:
        config_of(decoder).layer_types = saved.layer_types


@contextmanager
def layer_window(
    decoder: nn.Module, start: int = 0, stop: int | None = None
) -> Iterator[nn.Module]:
    """Inside, a call of `decoder` runs layers[start:stop] only (then the final norm). With
    start > 0 the caller passes that layer's input as `inputs_embeds`."""
    saved = _narrow(decoder, start, stop)
    try:
        yield decoder
    finally:
        _widen(decoder, saved)


class FrozenPrefix:
    """Stores the input of decoder layer `start` per sequence and starts later forwards there.
    Installed on a decoder with `install()`, taken off with `remove()` (end of the run)."""

    def __init__(self, decoder: nn.Module, start: int, max_bytes: int = DEFAULT_MAX_BYTES):
        layers = decoder_layers(decoder)
        if not 0 < start < len(layers):
            raise ValueError(f"a frozen prefix needs 0 < start < {len(layers)}")
        self.decoder = decoder
        self.start = start
        self.entry = layers[start]  # the module whose input is stored
        self.max_bytes = max_bytes
        self.states: dict[tuple, torch.Tensor] = {}  # key -> (n, d) hidden entering `entry`
        self.bytes = 0
        self.hits = self.misses = 0  # forwards started at `start` / run whole
        self._handles: list = []
        self._saved: _Window | None = None  # the window to restore after a shortened call
        self._pending: list | None = None  # (row, key, offset, length) to store in a full call

    def install(self) -> FrozenPrefix:
        # Registered after GRUN's own pre-hook, which reads the input ids this one removes.
        self._handles = [
            self.decoder.register_forward_pre_hook(self._before, with_kwargs=True),
            self.decoder.register_forward_hook(self._after, always_call=True),
            self.entry.register_forward_pre_hook(self._store, with_kwargs=True),
        ]
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.states, self.bytes = {}, 0

    def stats(self) -> dict:
        return {
            "start_layer": self.start,
            "sequences": len(self.states),
            "megabytes": self.bytes / 2**20,
            "hits": self.hits,
            "misses": self.misses,
        }

    # --- hooks ----------------------------------------------------------------------------

    def _before(self, decoder, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        self._pending = None
        if not decoder.training or input_ids is None or cache is not None:
            return None
        if kwargs.get("output_hidden_states") or kwargs.get("output_attentions"):
            return None  # the caller wants every layer's output: run them all
        if mask is not None and mask.dim() != 2:
            return None
        valid = mask.bool() if mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        rows = _rows(input_ids, valid)
        if rows is None:  # a row with holes in its mask: not a training batch, run it whole
            return None
        if not all(key in self.states for _, key, _, _ in rows):
            self.misses += 1
            self._pending = rows
            return None
        self.hits += 1
        first = self.states[rows[0][1]]
        hidden = first.new_zeros(*input_ids.shape, first.shape[-1])  # (B, T, d)
        for row, key, offset, length in rows:
            hidden[row, offset : offset + length] = self.states[key]
        # Where `entry` sits in the current list (a gate pass may have cut the top off it).
        index = next(i for i, layer in enumerate(decoder.layers) if layer is self.entry)
        self._saved = _narrow(decoder, index, None)
        kwargs = {**kwargs, "input_ids": None, "inputs_embeds": hidden, "use_cache": False}
        return (), kwargs

    def _store(self, layer, args, kwargs):
        if self._pending is None:
            return
        hidden = kwargs.get("hidden_states", args[0] if args else None)  # (B, T, d)
        for row, key, offset, length in self._pending:
            state = hidden[row, offset : offset + length].detach()
            size = state.numel() * state.element_size()
            if key not in self.states and self.bytes + size <= self.max_bytes:
                self.states[key] = state.clone()
                self.bytes += size
        self._pending = None

    def _after(self, decoder, args, output):
        self._pending = None
        if self._saved is not None:
            _widen(decoder, self._saved)
            self._saved = None


def _rows(input_ids: torch.Tensor, valid: torch.Tensor) -> list[tuple] | None:
    """(row, key, offset, length) per row, the key being (offset, its valid tokens); None when
    a row's valid tokens are not one contiguous run."""
    rows = []
    for row, (ids, ok) in enumerate(zip(input_ids, valid, strict=True)):
        positions = ok.nonzero().flatten()
        offset = int(positions[0]) if len(positions) else 0
        tokens = tuple(ids[ok].tolist())
        if len(positions) and int(positions[-1]) - offset + 1 != len(tokens):
            return None
        rows.append((row, (offset, tokens), offset, len(tokens)))
    return rows
