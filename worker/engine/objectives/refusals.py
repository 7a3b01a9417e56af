"""Refusal answers for IdkNLL / IdkDPO: a built-in list (ours), or a user file."""

from __future__ import annotations

from importlib.resources import files

from domain.records import load_refusals


def builtin_refusals() -> list[str]:
    return load_refusals(files(__package__) / "refusals.txt")


def refusals_for(path: str | None) -> list[str]:
    """The user's refusal file (one answer per line) when given, else the built-in list."""
    return load_refusals(path) if path else builtin_refusals()
