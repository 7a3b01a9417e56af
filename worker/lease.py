"""A job's lease, kept alive from a background thread while the engine works (the claim's
fence is what every write checks; see pipeline.py)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.jobs import repository as jobs_repository
from domain.jobs.service import Claim, LeaseLost, renew_lease

if TYPE_CHECKING:
    from worker.pipeline import Context

log = logging.getLogger(__name__)


@dataclass
class Lease:
    """Keeps the claim alive from a background thread while the engine works."""

    context: Context
    claim: Claim
    lost: bool = False
    cancel_requested: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{self.claim.job_id}", daemon=True
        )

    def _beat(self) -> None:
        settings = self.context.settings
        while not self._stop.wait(settings.heartbeat_s):
            try:
                with self.context.database.transaction() as session:
                    renew_lease(session, self.claim, settings.lease_s)
                    self.cancel_requested = jobs_repository.cancel_requested(
                        session, self.claim.job_id
                    )
            except LeaseLost:
                self.lost = True
                return
            except Exception:  # a database blip: try again next beat, the lease has slack
                log.exception("heartbeat failed for job %s", self.claim.job_id)

    def should_stop(self) -> bool:
        return self.lost or self.cancel_requested

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
