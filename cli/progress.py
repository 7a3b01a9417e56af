"""Training progress: a rich bar on a terminal, plain log lines elsewhere (a log file, a CI job,
a pipe): a bar redraws in place and leaves nothing a log can show (issue 18)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from domain.progress import Progress as TrainProgress

LOG_EVERY_S = 30.0  # at most one log line per this many seconds, besides every tenth of the run


@contextmanager
def training_progress(
    description: str, stream: TextIO | None = None
) -> Iterator[Callable[[TrainProgress], None]]:
    stream = stream or sys.stderr
    if not stream.isatty():
        yield log_lines(description, stream)
        return
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


def log_lines(description: str, stream: TextIO) -> Callable[[TrainProgress], None]:
    """One line at every tenth of the run, every LOG_EVERY_S seconds, and at the last step."""
    last = {"time": 0.0, "tenth": -1}

    def update(p: TrainProgress) -> None:
        tenth = p.step * 10 // max(p.total, 1)
        now = time.monotonic()
        if tenth == last["tenth"] and now - last["time"] < LOG_EVERY_S and p.step != p.total:
            return
        last.update(time=now, tenth=tenth)
        stream.write(f"{description}: step {p.step}/{p.total} loss {p.loss:.4f} "
                     f"elapsed {p.elapsed_s:.0f} s ETA {p.eta_s:.0f} s\n")  # fmt: skip
        stream.flush()

    return update
