"""Refusal answers for IdkNLL / IdkDPO: a built-in list (ours), or a user file."""

from __future__ import annotations

from pathlib import Path

from domain.records import load_refusals


def builtin_refusals() -> list[str]:
    # Next to this module: the package ships as plain files (load_refusals reads a path).
    return load_refusals(Path(__file__).with_name("refusals.txt"))


def refusals_for(path: str | None) -> list[str]:
    """The user's refusal file (one answer per line) when given, else the built-in list."""
    return load_refusals(path) if path else builtin_refusals()
