"""The obliviate engine: a plain-PyTorch library the CLI, the Celery tasks, the benchmarks and
notebooks all call. It imports neither Celery nor SQLAlchemy.

    from worker.engine import load_model, finetune, FinetuneConfig, generate_answers
"""

from domain.progress import Cancelled, Progress
from domain.records import (
    DataError,
    QARecord,
    TextRecord,
    load_records,
    load_refusals,
    parse_records,
)
from worker.engine.finetune import FinetuneConfig, finetune
from worker.engine.generate import generate_answers
from worker.engine.models import BUILTIN_MODELS, DEFAULT_MODEL, LoadedModel, ModelError, load_model
from worker.engine.objectives import OBJECTIVES, LossSettings, get_objective
from worker.engine.synthetic import synthetic_dataset
from worker.engine.unlearn import UnlearnConfig, unlearn

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "Cancelled",
    "DataError",
    "FinetuneConfig",
    "LoadedModel",
    "LossSettings",
    "OBJECTIVES",
    "ModelError",
    "Progress",
    "QARecord",
    "TextRecord",
    "UnlearnConfig",
    "finetune",
    "generate_answers",
    "get_objective",
    "load_model",
    "load_records",
    "load_refusals",
    "parse_records",
    "synthetic_dataset",
    "unlearn",
]
