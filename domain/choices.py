"""The unlearning methods and adapters a ticket may name. The engine registers the code behind
each name (`worker.engine.objectives`, `worker.engine.adapters`); a test keeps the two lists
equal. Kept here, free of torch, so the API can refuse an unknown name at the door (HTTP 422)
instead of a worker failing on it later."""

METHODS = ("ga", "graddiff", "npo", "simnpo", "idk", "idkdpo", "rmu")
ADAPTERS = ("full", "lora", "grun")

DEFAULT_MODEL = "smollm2-135m"  # the built-in model (worker/engine/models.py resolves it)
BUILTIN_MODEL_NAMES = ("smollm2-135m", "gemma3-270m")  # worker.engine.models.BUILTIN_MODELS
