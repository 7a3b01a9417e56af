"""`obliviate bench tofu-mini`: the method × adapter comparison on 2 CPU cores."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from cli.engine_commands import console, fail, user_errors

bench = typer.Typer(help="Benchmarks whose tables go to benchmarks/results/.", no_args_is_help=True)


@bench.command("tofu-mini")
def tofu_mini_command(
    split: Annotated[list[str] | None, typer.Option(help="forget01, forget05, forget10")] = None,
    method: Annotated[list[str] | None, typer.Option(help="only these methods")] = None,
    adapter: Annotated[list[str] | None, typer.Option(help="only these adapters")] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="a sweep point: this learning rate instead of each adapter's default"),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="the epoch budget of each cell (default 10), checked per epoch"),
    ] = None,
    check_epochs: Annotated[
        int, typer.Option(help="epochs between the checks (each ~4 min on forget05)")
    ] = 1,
    curve: Annotated[
        bool,
        typer.Option(
            help="only unlearn each cell and write its check curve, scored against the stored "
            "retain-model ratios (tofu_mini/<split>/retain_forget_ratios.json): no retain "
            "model is built, no table row is written"
        ),
    ] = False,
    evaluate: Annotated[
        bool,
        typer.Option(
            help="with --curve: also evaluate the picked model and the target (the whole suite "
            "and the probes, ~10 min each on forget05), beside the stored retain-model row"
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="the unlearning runs' seed (batch order)")] = 0,
    tofu_dir: Annotated[Path | None, typer.Option(help="TOFU data folder")] = None,
    retrain_seconds: Annotated[
        float | None,
        typer.Option(
            help="retraining's wall time for 'cost % of retrain' when the retain model's own "
            "build was slowed by other work (default: that build's measured time)"
        ),
    ] = None,
    eval_workers: Annotated[
        int,
        typer.Option(
            help="cells evaluated side by side in one-thread processes (unlearning always "
            "runs alone, as its wall time is measured)"
        ),
    ] = 1,
) -> None:
    """Build the fixtures (cached), run every cell (cached), write the table and plot."""
    from bench.cells import BenchOptions, select_cells
    from bench.curve import run_curve, stored_ratios_path
    from bench.run import run_tofu_mini
    from bench.tofu_mini import default_tofu_dir

    splits = split or ["forget05"]
    command = "obliviate " + " ".join(sys.argv[1:])
    try:
        if evaluate and not curve:
            raise ValueError("--evaluate goes with --curve (a table run always evaluates)")
        cells = select_cells(splits, method or [], adapter or [], lr, epochs, check_epochs, seed)
        options = BenchOptions(
            tofu_dir or default_tofu_dir(), retrain_s=retrain_seconds, eval_workers=eval_workers
        )
        if curve:
            paths = [
                run_curve(
                    cell,
                    options,
                    stored_ratios_path(cell.split),
                    command,
                    log=console.print,
                    evaluate=evaluate,
                )  # fmt: skip
                for cell in cells
            ]
        else:
            paths = [run_tofu_mini(splits, cells, options, command=command, log=console.print)]
    except user_errors() as error:
        fail(error)
    for path in paths:
        console.print(f"wrote {path}")


@bench.command("tickets")
def tickets_command(
    subjects: Annotated[int, typer.Option(help="customers, one ticket each per seed")] = 5,
    seeds: Annotated[int, typer.Option(help="seeds per subject (the policy's seed)")] = 3,
) -> None:
    """Deletion tickets through the pipeline on a 20-customer target: leaks, neighbours, cost."""
    from bench.cells import commit_id
    from bench.tickets import TicketBench, run_ticket_bench

    try:
        path = run_ticket_bench(
            TicketBench(subjects=subjects, seeds=seeds),
            command="obliviate " + " ".join(sys.argv[1:]),
            commit=commit_id(),
            log=console.print,
        )
    except user_errors() as error:
        fail(error)
    console.print(f"wrote {path}")


@bench.command("pretraining")
def pretraining_command(
    cell: Annotated[
        list[str] | None,
        typer.Option(help="method:adapter, repeatable (default: idk and npo × grun and full)"),
    ] = None,
) -> None:
    """Forget what the built-in model knew before any fine-tuning: a ticket per cell."""
    from bench.cells import commit_id
    from bench.pretraining import CELLS, run_pretraining_bench
    from domain.choices import ADAPTERS, METHODS

    cells: Sequence[tuple[str, str]] = CELLS
    if cell:
        if bad := [c for c in cell if c.count(":") != 1]:
            fail(ValueError(f"--cell {bad[0]!r}: write method:adapter, e.g. npo:grun"))
        cells = [(c.split(":")[0], c.split(":")[1]) for c in cell]
        for method, adapter in cells:
            if method not in METHODS or adapter not in ADAPTERS:
                fail(ValueError(f"--cell {method}:{adapter}: methods {', '.join(METHODS)}; "
                                f"adapters {', '.join(ADAPTERS)}"))  # fmt: skip
    try:
        path = run_pretraining_bench(
            cells, command="obliviate " + " ".join(sys.argv[1:]), commit=commit_id(),
            log=console.print,
        )  # fmt: skip
    except user_errors() as error:
        fail(error)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench, name="bench")
