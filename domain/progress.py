"""A running job's progress and its cancellation: what the training loop reports and the
pipeline stores on the ticket, torch-free so the scheduler and the API need no engine."""

from __future__ import annotations

from dataclasses import dataclass, field


class Cancelled(RuntimeError):
    """Raised when `should_stop()` returned True; the last checkpoint (if any) is kept."""


@dataclass
class Progress:
    step: int
    total: int
    loss: float
    elapsed_s: float
    first_step: int = 0  # where this run started (after a resume), for the rate
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def eta_s(self) -> float:
        rate = self.elapsed_s / max(self.step - self.first_step, 1)
        return rate * (self.total - self.step)
