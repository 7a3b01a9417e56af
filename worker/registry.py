"""Model versions on disk. The registry's rows live in the database (api/models); this module
owns the files: `<artifacts>/<model>/v<N>/` per version, written under a staging folder and
renamed into place, plus a `version.json` saying what the folder is.

A GRUN or LoRA version is an adapter folder whose manifest names its parent version's spec as
its base, so loading it loads "base + ordered modules"; a full fine-tune is whole weights.
Version 1 is the registered base model itself, never copied and never modified.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

VERSION_INFO = "version.json"
STAGING = ".staging"
RUN_INFO = "run.json"  # the engine's record of the run (worker.engine.recipe)


def base_artifact_hash(spec: str) -> str | None:
    """sha256 of a registered base model's weights when they are local files; built-in names
    are pinned by their package version instead (None)."""
    from worker.engine.models import BUILTIN_MODELS, folder_hash, hash_file  # torch, lazily

    path = Path(spec).expanduser()
    if spec in BUILTIN_MODELS or not path.exists():
        return None
    return hash_file(path) if path.is_file() else folder_hash(path)


def version_folder(artifacts_dir: Path, model_name: str, number: int) -> Path:
    return Path(artifacts_dir) / model_name / f"v{number}"


def staging_folder(artifacts_dir: Path, model_name: str, job_id: str, attempt: int) -> Path:
    """Where one attempt trains; a retried attempt starts from a fresh folder."""
    return Path(artifacts_dir) / model_name / STAGING / f"{job_id}-a{attempt}"


def store_version(
    trained: Path,
    artifacts_dir: Path,
    model_name: str,
    number: int,
    info: dict,
    forget_hash: str | None = None,
) -> tuple[Path, str]:
    """Move a finished training output into its version folder; return (folder, weights hash).

    `forget_hash` (the ticket's keyed records hash) replaces the engine's plain hash of the
    forget set in run.json: a version outlives the ticket's data key, and a plain hash of a
    one-record forget set would confirm a guessed record."""
    from worker.engine.models import folder_hash

    target = version_folder(artifacts_dir, model_name, number)
    if target.exists():  # left by an attempt that died between the move and its commit
        shutil.rmtree(target)
    run_info = trained / RUN_INFO
    if forget_hash is not None and run_info.is_file():
        run = json.loads(run_info.read_text())
        run.setdefault("data", {})["forget"] = forget_hash
        run_info.write_text(json.dumps(run, indent=2, sort_keys=True))
    info = {"model": model_name, "version": number, **info}
    (trained / VERSION_INFO).write_text(json.dumps(info, indent=2, sort_keys=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    trained.rename(target)
    return target, folder_hash(target)


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)


def staged_attempts(artifacts_dir: Path) -> list[tuple[str, Path]]:
    """Every staging folder (and `.partial` checkpoint) on disk, with the job id in its name."""
    found = []
    for folder in Path(artifacts_dir).glob(f"*/{STAGING}/*"):
        job_id, marker, _ = folder.name.rpartition("-a")  # "<job uuid>-a<attempt>[.partial]"
        if marker:
            found.append((job_id, folder))
    return found


def discard_earlier_attempts(artifacts_dir: Path, model_name: str, job_id: str, attempt: int):
    """Remove what killed attempts of this job left (a `.partial` checkpoint holds weights
    trained on the forget data: issue 18). A clean failure removes its own; kill -9 cannot."""
    for earlier in range(1, attempt):
        discard(staging_folder(artifacts_dir, model_name, job_id, earlier))
