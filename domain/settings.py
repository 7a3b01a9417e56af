"""One typed settings object, read from OBLIVIATE_* environment variables (or a .env file).

Outside development it refuses to start with the default secrets. Without a broker URL the
service runs embedded: SQLite under cache_home() and an in-process worker thread.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.paths import cache_home

DEV_SECRET = "dev-secret-change-me"


def _service_home() -> Path:
    return cache_home() / "service"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OBLIVIATE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""  # empty: SQLite file under cache_home()/service
    broker_url: str = ""  # empty: embedded in-process worker instead of Celery
    broker_key_prefix: str = "obliviate:"
    secret_key: SecretStr = SecretStr(DEV_SECRET)  # HMAC of API keys and subject identifiers
    data_key: SecretStr = SecretStr(DEV_SECRET)  # wraps the per-ticket data keys
    artifacts_dir: Path = Field(default_factory=lambda: _service_home() / "artifacts")
    policies_dir: Path = Field(default_factory=lambda: _service_home() / "policies")  # <model>.toml
    engine_runner: str = "worker.runner:EngineRunner"  # module:attribute, swappable in tests
    worker_name: str = ""
    lease_s: float = Field(120.0, gt=0)  # a worker that stops heartbeating loses the job after
    heartbeat_s: float = Field(20.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    sweep_interval_s: float = Field(30.0, gt=0)  # how often lost or unsent jobs are re-sent
    job_soft_time_limit_s: int = 6 * 3600
    job_hard_time_limit_s: int = 6 * 3600 + 600
    max_records: int = 10_000
    max_upload_bytes: int = 20 * 1024 * 1024
    max_json_bytes: int = 8 * 1024 * 1024  # an inline request body (tickets with records)
    rate_limit_per_minute: int = Field(6000, ge=0)  # requests per API key (0: no limit)
    # The web pages' cookies carry Secure: always in production (behind a TLS proxy the app
    # itself sees plain http), elsewhere when the request came over https. Set false only for a
    # production stack served without TLS, which then sends its session in the clear.
    secure_cookies: bool | None = None
    # Signed audit checkpoints, kept outside the database (mount it elsewhere in production);
    audit_checkpoints: Path = Field(
        default_factory=lambda: _service_home() / "audit-checkpoints.jsonl"
    )

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_dev_secrets(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{_service_home() / 'obliviate.db'}"
        if self.environment != "development":
            for name in ("secret_key", "data_key"):
                if getattr(self, name).get_secret_value() == DEV_SECRET:
                    raise ValueError(
                        f"OBLIVIATE_{name.upper()} is the development default; set a real "
                        f"secret when OBLIVIATE_ENVIRONMENT={self.environment}"
                    )
        if self.job_hard_time_limit_s <= self.job_soft_time_limit_s:
            raise ValueError("job_hard_time_limit_s must exceed job_soft_time_limit_s")
        if self.heartbeat_s >= self.lease_s:
            raise ValueError("heartbeat_s must be shorter than lease_s")
        return self

    def cookies_secure(self, scheme: str) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.environment == "production" or scheme == "https"

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
