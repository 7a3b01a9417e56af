"""Output folders: written under `<name>.partial/` and renamed into place only when complete.

A run that dies leaves `<name>.partial/` with a PARTIAL marker and its last checkpoint; the
next run with `resume=True` continues from it, and nothing half-written ever sits at `<name>`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MANIFEST = "obliviate.json"  # what a folder holds: adapter kind, base model and its hash
RUN_INFO = "run.json"  # how it was made: config, data hashes, cost


class OutputExistsError(FileExistsError):
    pass


def staging_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def prepare_output(output: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Return the staging folder to write into; refuse to clobber anything by accident."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; pass --overwrite to replace it")
    staging = staging_path(output)
    if staging.exists() and not resume:
        if not overwrite:
            raise OutputExistsError(
                f"{staging} holds an interrupted run; pass --resume to continue it "
                "or --overwrite to start again"
            )
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "PARTIAL").write_text("This run did not finish; see run.json once it does.\n")
    return staging


def finalize_output(staging: Path, output: Path) -> Path:
    shutil.rmtree(staging / "checkpoint", ignore_errors=True)
    (staging / "PARTIAL").unlink(missing_ok=True)
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)
    return output


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None
