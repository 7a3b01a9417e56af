"""Benchmark harnesses whose tables go to benchmarks/results/ (`obliviate bench ...`)."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
