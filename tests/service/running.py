"""Real `obliviate serve` / `worker` / `scheduler` processes for the service tests, and the
waits they need."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


class Processes:
    def __init__(self, env: dict, logs):
        self.env, self.logs, self.running = env, logs, []

    def start(self, *args: str, **extra_env) -> subprocess.Popen:
        log = (self.logs / f"{args[0]}-{len(self.running)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the pool children too
        )
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        """Test processes need no clean shutdown: the database and Redis keys are dropped."""
        for process in self.running:
            if process.poll() is None:
                self.kill(process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def serve(processes: Processes, **extra_env) -> httpx.Client:
    """`obliviate serve` on a free port, once it answers."""
    port = free_port()
    processes.start("serve", "--port", str(port), **extra_env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def up():
        try:
            return client.get("/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 60, "the API to answer")
    return client


def state(client, keys, ticket_id) -> str:
    response = client.get(
        f"/v1/deletion-requests/{ticket_id}", headers={"X-API-Key": keys["operator"]}
    )
    return response.json()["state"]
