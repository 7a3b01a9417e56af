"""Requests per API key per minute: 429 with Retry-After past the limit, per key, counted in
Redis so that every API process shares one count (in memory on the embedded stack)."""

import secrets

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from tests.service.conftest import RecordingDispatcher, make_keys

pytestmark = pytest.mark.service


def _client(settings):
    return TestClient(create_app(settings, dispatcher=RecordingDispatcher()))


def _get(client, key):
    return client.get("/v1/models", headers={"X-API-Key": key})


def test_past_the_limit_a_key_gets_429_with_retry_after_and_other_keys_do_not(settings, database):
    keys = make_keys(database, settings)
    limited = settings.model_copy(update={"rate_limit_per_minute": 3})
    with _client(limited) as client:
        assert [_get(client, keys["requester"]).status_code for _ in range(3)] == [200] * 3
        refused = _get(client, keys["requester"])
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "3 requests a minute" in refused.json()["detail"]
        assert _get(client, keys["operator"]).status_code == 200  # its own count


def test_api_processes_share_the_count_in_redis(settings, database):
    keys = make_keys(database, settings)
    shared = settings.model_copy(update={
        "rate_limit_per_minute": 3, "broker_url": "redis://127.0.0.1:6379/0",
        "broker_key_prefix": f"test-{secrets.token_hex(4)}:",
    })  # fmt: skip
    with _client(shared) as first, _client(shared) as second:
        codes = [_get(app, keys["auditor"]).status_code for app in (first, second, first)]
        assert codes == [200, 200, 200]
        assert _get(second, keys["auditor"]).status_code == 429  # the 4th, in either process
    # The window's count expires in Redis: a key's old windows do not pile up there.
    client = redis.Redis.from_url(shared.broker_url)
    (name,) = client.keys(f"{shared.broker_key_prefix}rate:*")
    assert 60 <= client.ttl(name) <= 120
    client.delete(name)
