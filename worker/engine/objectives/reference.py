"""Reference values once per run (issue 14): what the reference model (the model before
unlearning, which never changes during a run) computes on a sequence is stored the first time
it is asked for and reused at every later step that draws the same sequence.

NPO and IdkDPO's reference log-probs, the KL retain term's reference distributions and RMU's
reference activations all go through `ReferenceValues.get`. A value is stored per sequence
(its non-padding tokens) and per kind, for the sequence's own positions; batches are right
padded, so a stored row fits any batch it is drawn into. Memory is bounded by `max_bytes`:
past it, values are computed again each time (KL distributions are the large ones: vocabulary
× 4 bytes per token, ~200 kB per token on the built-in model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DEFAULT_MAX_BYTES = 2**30


class ReferenceValues:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.values: dict[tuple, tuple[torch.Tensor, int]] = {}  # key -> (row value, shift)
        self.bytes = 0
        self.hits = self.misses = 0
        self.unstored = 0  # rows computed but not kept (over max_bytes, or left padded)

    def get(self, kind: str, batch: dict, compute: Callable[[dict], torch.Tensor]) -> torch.Tensor:
        """`compute(batch)` -> (B, T - shift, ...) aligned with the batch's positions, from the
        store when every row is in it."""
        mask = batch["attention_mask"].bool()  # (B, T)
        lengths = mask.sum(1)  # (B,)
        right_padded = bool((mask.int().cumprod(1).sum(1) == lengths).all())
        if not right_padded:  # the stored rows assume positions from 0
            self.unstored += len(lengths)
            return compute(batch)
        rows = zip(batch["input_ids"], mask, strict=True)
        keys = [(kind, tuple(ids[ok].tolist())) for ids, ok in rows]
        if all(key in self.values for key in keys):
            self.hits += 1
            return self._assemble(keys, batch["input_ids"].shape[1])
        self.misses += 1
        value = compute(batch).detach()
        shift = batch["input_ids"].shape[1] - value.shape[1]
        for row, key in enumerate(keys):
            stored = value[row, : max(int(lengths[row]) - shift, 0)]
            size = stored.numel() * stored.element_size()
            if key not in self.values and self.bytes + size <= self.max_bytes:
                self.values[key] = (stored.clone(), shift)
                self.bytes += size
            elif key not in self.values:
                self.unstored += 1
        return value

    def _assemble(self, keys: list[tuple], length: int) -> torch.Tensor:
        first, shift = self.values[keys[0]]
        out = first.new_zeros(len(keys), length - shift, *first.shape[1:])
        for row, key in enumerate(keys):
            stored = self.values[key][0]
            out[row, : len(stored)] = stored
        return out

    def stats(self) -> dict:
        return {
            "sequences": len(self.values),
            "megabytes": self.bytes / 2**20,
            "hits": self.hits,
            "misses": self.misses,
            "unstored": self.unstored,
        }
