"""Loaded models for spot-check generation in the API process: one at a time, reused while
the same version is asked about (loading is the slow part)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only when a spot check is asked for
    from worker.engine.models import LoadedModel


class LoadedModels:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._spec: str | None = None

    def generate(self, spec: str, questions: list[str], max_new_tokens: int) -> list[str]:
        from worker.engine.generate import generate_answers  # torch: only when asked
        from worker.engine.models import load_model

        with self._lock:  # one generation at a time: the CPU or GPU is the bottleneck anyway
            if self._spec != spec:
                self._loaded, self._spec = load_model(spec), spec
            assert self._loaded is not None
            return generate_answers(self._loaded, questions, max_new_tokens=max_new_tokens)
