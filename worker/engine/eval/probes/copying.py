"""Copies of a loaded model that attacks (relearning, quantization) may change freely."""

from __future__ import annotations

import copy
import dataclasses

from torch import nn

from worker.engine.adapters.grun_module import GrunStack
from worker.engine.models import LoadedModel


def _is_grun_hook(hook) -> bool:
    return getattr(hook, "__qualname__", "").startswith("GrunStack.")


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy that computes what `model` computes and shares nothing with it.

    GRUN's hooks are closures over their stack, so a plain deepcopy's layers would still call
    the original stack (its call state, its on/off switch). The copy drops those hooks and adds
    its own (copied) requests to a fresh stack, in order.
    """
    duplicate = copy.deepcopy(model)
    stack = getattr(duplicate, "grun_stack", None)
    if stack is None:
        return duplicate
    for module in duplicate.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key in [k for k, hook in hooks.items() if _is_grun_hook(hook)]:
                del hooks[key]
                module._forward_hooks_with_kwargs.pop(key, None)
                module._forward_pre_hooks_with_kwargs.pop(key, None)
    requests, enabled = list(stack.requests), stack.enabled
    del duplicate.grun_stack
    fresh = GrunStack.of(duplicate)
    for request in requests:
        fresh.add(duplicate, request)
    fresh.enabled = enabled
    return duplicate


def copy_loaded(loaded: LoadedModel) -> LoadedModel:
    return dataclasses.replace(loaded, model=copy_model(loaded.model))
