"""`obliviate finetune` / `unlearn` progress when the output is not a terminal: log lines."""

import io

from cli.progress import training_progress
from domain.progress import Progress


def test_without_a_terminal_progress_comes_as_log_lines_at_each_tenth():
    stream = io.StringIO()  # not a terminal, like a log file or a CI job
    with training_progress("fine-tuning", stream) as update:
        for step in range(1, 101):
            update(Progress(step, 100, loss=1.0 / step, elapsed_s=step * 0.5))
    lines = stream.getvalue().splitlines()
    # Before: nothing at all (a rich bar that a pipe never shows).
    assert len(lines) == 11 and lines[0].startswith("fine-tuning: step 1/100 loss 1.0000")
    assert lines[-1].startswith("fine-tuning: step 100/100") and "ETA 0 s" in lines[-1]
