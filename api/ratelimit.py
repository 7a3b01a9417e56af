"""Requests per API key per minute (issue 18): a fixed one-minute window, counted in Redis
when the service has a broker (every API process then shares one count), in this process's
memory on the embedded stack. Over the limit the API answers 429 with Retry-After."""

from __future__ import annotations

import logging
import threading
import time

import redis

from domain.errors import RateLimited

log = logging.getLogger(__name__)
WINDOW_S = 60


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str = "", prefix: str = "obliviate:") -> None:
        self.per_minute, self.prefix = per_minute, prefix
        shared = redis_url.startswith(("redis://", "rediss://"))
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=0.5) if shared else None
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one request of `key`; raise RateLimited past the limit (0: no limit)."""
        if not self.per_minute:
            return
        now = time.time()
        window = int(now // WINDOW_S)
        count = self._count(key, window)
        if count is not None and count > self.per_minute:
            retry_after = max(1, int((window + 1) * WINDOW_S - now + 0.999))
            raise RateLimited(self.per_minute, retry_after)

    def _count(self, key: str, window: int) -> int | None:
        if self.redis is None:
            with self._lock:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
                self._counts[key, window] = self._counts.get((key, window), 0) + 1
                return self._counts[key, window]
        name = f"{self.prefix}rate:{key}:{window}"
        try:
            # One command per request: the window's first request sets its expiry (a pipeline
            # of both on every request cost more of a status poll's CPU than its own query).
            count = self.redis.incr(name)
            if count == 1:
                self.redis.expire(name, 2 * WINDOW_S)
        except redis.RedisError:
            # The broker is down: serve (readiness reports it) rather than refuse everyone.
            log.warning("rate limit not counted: Redis unreachable")
            return None
        return int(count)
