"""How parameters change during (un)learning, chosen independently of the objective.

An adapter wraps a loaded model (the API shape of PEFT): `attach` prepares it for training,
`trainable()` names the parameters the optimizer updates, `reference()` yields the model as it
was before training (for KL / NPO / DPO / RMU), and `save` writes a folder `load_model` reads.
"""

from worker.engine.adapters.base import (
    ADAPTERS,
    Adapter,
    default_lr,
    get_adapter,
    register_adapter,
)
from worker.engine.adapters.full import FullAdapter
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.adapters.lora import LoraAdapter

__all__ = [
    "ADAPTERS",
    "Adapter",
    "FullAdapter",
    "GrunAdapter",
    "LoraAdapter",
    "default_lr",
    "get_adapter",
    "register_adapter",
]
