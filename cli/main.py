"""The `obliviate` command: one typer app; each area registers its own commands."""

import typer
from transformers.utils import logging as hf_logging

from cli import (
    bench_commands,
    engine_commands,
    eval_commands,
    service_commands,
    unlearn_commands,
)

app = typer.Typer(
    help="obliviate: make a deployed LLM forget specific data, and prove it with numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Operators read our progress bars; the library's per-tensor loading bars are noise.
hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()

for module in (engine_commands, unlearn_commands, eval_commands, service_commands, bench_commands):
    module.register(app)

if __name__ == "__main__":
    app()
