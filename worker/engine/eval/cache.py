"""Results cached per model hash, so an evaluation re-run recomputes only what changed.

One JSON file per (model hash, kind, settings) under `cache_home()/eval/`: a map from a content
key (the prompt text and the answer) to the stored result. A different model, prompt, answer or
setting is a different key, so a stale result is never served. Written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from domain.paths import cache_home


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class ResultCache:
    def __init__(
        self,
        model_hash: str,
        kind: str,
        settings: dict,
        enabled: bool = True,
        folder: str | Path | None = None,  # default cache_home()/eval
    ):
        name = f"{kind}-{_digest(json.dumps(settings, sort_keys=True))[:16]}.json"
        root = Path(folder) if folder else cache_home() / "eval"
        self.path = root / _digest(model_hash)[:32] / name
        self.enabled = enabled
        self.entries: dict[str, object] = {}
        if enabled and self.path.is_file():
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))

    def save(self) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.path)

    def cached_map(
        self, keys: Sequence[tuple[str, ...]], compute: Callable[[list[int]], list]
    ) -> tuple[list, int]:
        """Values for every key; `compute(missing positions)` fills the gaps, then we save.

        Returns (values in key order, how many were computed).
        """
        digests = [_digest(*key) for key in keys]
        missing = [i for i, d in enumerate(digests) if d not in self.entries]
        first_of: dict[str, int] = {}  # equal keys share one computation
        todo = sorted({first_of.setdefault(digests[i], i) for i in missing})
        if todo:
            for index, value in zip(todo, compute(todo), strict=True):
                self.entries[digests[index]] = value
            self.save()
        return [self.entries[d] for d in digests], len(todo)
