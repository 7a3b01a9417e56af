"""The `obliviate` command: one typer app; each area registers its own commands."""

import typer

from cli import engine_commands, eval_commands, service_commands, unlearn_commands

app = typer.Typer(
    help="obliviate: make a deployed LLM forget specific data, and prove it with numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for module in (engine_commands, unlearn_commands, eval_commands, service_commands):
    module.register(app)

if __name__ == "__main__":
    app()
