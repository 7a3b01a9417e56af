"""The obliviate engine: a plain-PyTorch library the CLI, the Celery tasks, the benchmarks and
notebooks all call. It imports neither Celery nor SQLAlchemy.

    from worker.engine import load_model, finetune, FinetuneConfig, generate_answers

Names resolve lazily, so importing one submodule does not import them all (and submodules can
import each other without cycles through this package).
"""

from importlib import import_module

_EXPORTS = {
    "load_model": "models",
    "LoadedModel": "models",
    "ModelError": "models",
    "BUILTIN_MODELS": "models",
    "DEFAULT_MODEL": "models",
    "QARecord": "data",
    "TextRecord": "data",
    "DataError": "data",
    "load_records": "data",
    "parse_records": "data",
    "load_refusals": "data",
    "synthetic_dataset": "synthetic",
    "FinetuneConfig": "finetune",
    "finetune": "finetune",
    "generate_answers": "generate",
    "Progress": "train",
    "Cancelled": "train",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'worker.engine' has no attribute {name!r}")
    return getattr(import_module(f"worker.engine.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)
