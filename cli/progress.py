"""A rich progress bar for training runs: step, loss and ETA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from domain.progress import Progress as TrainProgress


@contextmanager
def training_progress(description: str) -> Iterator[Callable[[TrainProgress], None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=None, loss="-")

        def update(p: TrainProgress) -> None:
            bar.update(task, completed=p.step, total=p.total, loss=f"{p.loss:.4f}")

        yield update
