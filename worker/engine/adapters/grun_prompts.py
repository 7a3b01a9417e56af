"""Where a prompt ends, read from its tokens (GRUN's gate decides at the last prompt token; see
grun_module.py): the marker tokens every formatted prompt ends with, each row's last prompt
position, and the prompt tokens a gate decision depends on; and the pools of prompts the gate
loss draws from."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from worker.engine.data import IGNORE_INDEX, Example, format_prompt

# A group of drawn prompts batched together holds lengths up to this many times its shortest:
# on the built-in model a chat prompt (~40 tokens, the template's system prompt included)
# padded beside a plain one (~16) more than doubled the plain one's work in the gate pass.
PADDING_SLACK = 1.5

# Questions with different endings: the tokens every formatted prompt shares at its end
# are the marker (a question's last character may merge with the template in BPE).
_MARKER_PROBES = ("Who is Ada?", "Name the year.", "x")


def _common_suffix(sequences: Sequence[Sequence[int]]) -> tuple[int, ...]:
    shortest = min(len(s) for s in sequences)
    length = 0
    while length < shortest and len({s[len(s) - 1 - length] for s in sequences}) == 1:
        length += 1
    return tuple(sequences[0][len(sequences[0]) - length :])


def prompt_markers(tokenizer) -> tuple[tuple[int, ...], ...]:
    """The token ids that end every chat and every plain prompt (at least 2 tokens each)."""
    markers = []
    for chat in (True, False):
        prompts = [
            tokenizer(format_prompt(tokenizer, q, chat=chat), add_special_tokens=False)["input_ids"]
            for q in _MARKER_PROBES
        ]
        marker = _common_suffix(prompts)
        if len(marker) >= 2 and marker not in markers:
            markers.append(marker)
    return tuple(markers)


def last_prompt_positions(
    input_ids: torch.Tensor, valid: torch.Tensor, markers: Sequence[Sequence[int]]
) -> torch.Tensor:
    """(B,) index of each row's last prompt token: the end of its last marker, else its last
    valid token. input_ids, valid: (B, T)."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
    last_valid = torch.where(valid, positions, -1).amax(1)  # (B,)
    found = torch.full_like(last_valid, -1)
    for marker in markers:
        k = len(marker)
        if k > input_ids.shape[1]:
            continue
        pattern = torch.tensor(marker, device=input_ids.device)
        windows = input_ids.unfold(1, k, 1)  # (B, T-k+1, k)
        hits = (windows == pattern).all(-1) & valid.unfold(1, k, 1).all(-1)  # (B, T-k+1)
        ends = torch.where(hits, positions[k - 1 :], -1).amax(1)  # (B,)
        found = torch.maximum(found, ends)
    return torch.where(found >= 0, found, last_valid)


def prompt_keys(
    input_ids: torch.Tensor, valid: torch.Tensor, last_prompt: torch.Tensor
) -> list[tuple[int, ...]]:
    """Each row's prompt tokens, padding dropped: all its gate depends on (causal attention)."""
    return [
        tuple(ids[: end + 1][ok[: end + 1]].tolist())
        for ids, ok, end in zip(input_ids, valid, last_prompt.tolist(), strict=True)
    ]


class PromptPool:
    """Questions the gate loss draws a few of at each step, in turn, as formatted prompts;
    with `plain`, each question in the chat template and then as plain text (a tokenizer
    without a chat template has only the plain form)."""

    def __init__(self, tokenizer, questions: Sequence[str], *, plain: bool = False) -> None:
        chat_forms = (
            (True, False) if plain and getattr(tokenizer, "chat_template", None) else (True,)
        )
        ids = [
            tokenizer(format_prompt(tokenizer, q, chat=chat), add_special_tokens=False)["input_ids"]
            for q in questions
            for chat in chat_forms
        ]
        self.examples = [Example(row, [IGNORE_INDEX] * len(row)) for row in ids]
        self.cursor = 0

    def draw(self, count: int) -> list[Example]:
        n = len(self.examples)
        rows = [self.examples[(self.cursor + i) % n] for i in range(min(count, n))]
        self.cursor = (self.cursor + len(rows)) % n
        return rows


def length_groups(lengths: Sequence[int], slack: float = PADDING_SLACK) -> list[list[int]]:
    """Indices into `lengths` in groups to batch apart: by length, a new group starting where a
    row is more than `slack` times as long as its group's shortest."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups and lengths[index] <= slack * lengths[groups[-1][0]]:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups
