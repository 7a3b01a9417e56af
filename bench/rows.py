"""Measured table rows, kept beside the table they make (benchmarks/results/tofu_mini/<split>/).

The models behind a row live in the cache and may be gone (a new machine, a cleaned cache);
the rows are the results, so they are committed with the table. Each row records the
fingerprints (weight sha256) of the fixtures it was measured against; rows are only ever
combined with rows measured against the same fixtures, so a table never mixes two builds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from worker.engine.artifacts import write_json

FIXTURES = ("target", "retain")


@dataclass(frozen=True)
class RowStore:
    folder: Path  # <results>/tofu_mini/<split>

    def _read(self, path: Path) -> dict | None:
        return json.loads(path.read_text()) if path.is_file() else None

    def fixture(self, name: str) -> dict | None:
        return self._read(self.folder / f"{name}.json")

    def cell(self, name: str) -> dict | None:
        """The cell's row, if it was measured against the stored fixture rows' models."""
        row = self._read(self.folder / "cells" / f"{name}.json")
        return row if row and row["fixtures"] == self.fingerprints() else None

    def cells(self) -> list[dict]:
        """Every stored cell row measured against the stored fixture rows' models."""
        names = sorted(path.stem for path in self.folder.glob("cells/*.json"))
        return [row for row in map(self.cell, names) if row is not None]

    def fingerprints(self) -> dict | None:
        """The fixtures every stored row was measured against (None: no fixture rows yet)."""
        row = self.fixture("target")
        return row["fixtures"] if row else None

    def _write(self, path: Path, row: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, row)

    def write_fixture(self, name: str, row: dict) -> None:
        self._write(self.folder / f"{name}.json", row)

    def write_cell(self, row: dict) -> None:
        self._write(self.folder / "cells" / f"{row['name']}.json", row)

    def clear(self) -> None:
        """Drop every row: they were measured against other fixtures."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def complete(self, names: list[str]) -> bool:
        """Both fixture rows and a row for each of these cells are stored."""
        stored = [self.fixture(f) for f in FIXTURES] + [self.cell(n) for n in names]
        return all(row is not None for row in stored)
