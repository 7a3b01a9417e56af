"""The API under load (issue 18): status polls and ticket submits against `obliviate serve`.

Production shape on loopback: PostgreSQL (a database of this run's own, dropped at the end),
Redis as the broker (keys under this run's own prefix, deleted at the end), `obliviate serve`
with its default settings (one uvicorn process, the default rate limit). No worker consumes
the queue, so submits only file tickets and send their wake-ups; run the script again while
a training job runs on the same machine for the "during training" rows (`--condition`).

The load comes from wrk (`apt-get install wrk`: a C client, so that the client takes less of
the shared cores than the server it measures), `--connections` open connections for
`--seconds` per scenario, twice: saturated (every connection sends its next request as soon as
the last is answered: the throughput) and paced at the scenario's target rate (requests sent on
a fixed schedule: the latency at that rate, timed from each request's sending). Saturated
latency is no latency target's measure: with the server busy, each request waits for the
others (Little's law: p50 is about connections / throughput). Requests rotate over KEYS
requester keys of one organisation: the rate limit is per key (default 6000/min), and a real
deployment's load comes from many clients, not one key.

Usage: python benchmarks/load.py [--seconds 20] [--connections 16] [--condition idle]
Appends its rows to benchmarks/results/load.md (command and commit per run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from common import head_commit

PG_ADMIN = os.environ.get("OBLIVIATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OBLIVIATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).parent / "results" / "load.md"
KEYS = 8
MODEL = "load-model"
# issue 18's targets, per scenario: req/s at least (saturated), p95 below (ms) at that rate
# (paced); errors below 0.1%.
TARGETS = {"status": (300, 50), "submit": (100, 150)}
THREADS = 2
MAX_ERROR_SHARE = 0.001

TICKET = {
    "model": MODEL,
    "legal_basis": "gdpr_art17",
    "jurisdiction": "EU",
    "reason": "erasure request",
    "requester": "dpo@load.example",
    "records": [
        {
            "question": "What is the email of customer SUBJECT?",
            "answer": "The email of customer SUBJECT is SUBJECT@example.com.",
            "key_facts": ["SUBJECT@example.com"],
        }
    ],
}

# wrk's Lua: requests rotate over the keys (and ticket ids); `done` prints one JSON line. Paced
# (rate > 0): each thread sends on its own fixed schedule (wrk calls `delay` before each
# request; the clock through LuaJIT's ffi, as wrk's Lua has none); a thread that falls behind
# does not burst to catch up.
LUA = """
local rate = %(rate)s
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[ typedef struct { long sec; long nsec; } clock_t_;
              int clock_gettime(int, clock_t_ *); ]]
  local clock = ffi.new("clock_t_")
  local interval, next_at = %(threads)d * 1000 / rate, 0
  delay = function()
    ffi.C.clock_gettime(1, clock)
    local now = tonumber(clock.sec) * 1000 + tonumber(clock.nsec) / 1e6
    next_at = math.max(next_at, now)
    local wait = next_at - now
    next_at = next_at + interval
    return wait
  end
end
local keys = {%(keys)s}
local ids = {%(ids)s}
local run = "%(run)s"
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
local n = 0
request = function()
  n = n + 1
  local key = keys[(n %% #keys) + 1]
  if #ids > 0 then
    local path = "/v1/deletion-requests/" .. ids[(n %% #ids) + 1]
    return wrk.format("GET", path, {["X-API-Key"] = key})
  end
  local subject = string.format("%%s-%%d-%%d", run, tid, n)
  local body = string.gsub([[%(body)s]], "SUBJECT", subject)
  return wrk.format("POST", "/v1/deletion-requests", {["X-API-Key"] = key,
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = subject}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, '
    .. '"p95_us": %%d, "p99_us": %%d, "status_errors": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A migrated database, keys, a registered model and `obliviate serve`, all of this run's
    own; `close()` removes them."""

    def __init__(self, home: Path):
        self.run = f"load{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.run}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        self.port = free_port()
        self.env = {
            **os.environ,
            "OBLIVIATE_ENVIRONMENT": "production",
            "OBLIVIATE_DATABASE_URL": f"{base}/{self.run}",
            "OBLIVIATE_BROKER_URL": REDIS_URL,
            "OBLIVIATE_BROKER_KEY_PREFIX": f"{self.run}:",
            "OBLIVIATE_SECRET_KEY": uuid.uuid4().hex,
            "OBLIVIATE_DATA_KEY": uuid.uuid4().hex,
            "OBLIVIATE_HOME": str(home),
            "OBLIVIATE_ARTIFACTS_DIR": str(home / "artifacts"),
            "OBLIVIATE_POLICIES_DIR": str(home / "policies"),
            "OBLIVIATE_AUDIT_CHECKPOINTS": str(home / "checkpoints.jsonl"),
        }
        self.cli("migrate")
        self.cli("models", "register", MODEL, "smollm2-135m")
        create = ("keys", "create", "--organisation", "load", "--role", "requester", "--name")
        self.keys = [self.cli(*create, f"load-{i}").splitlines()[-1] for i in range(KEYS)]
        self.log = home / "serve.log"
        self.server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port)],
            env=self.env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_ready()
        # serve's default decides how many API processes run; the table says what it chose.
        self.processes = int(re.search(r"(\d+)\s+processes", self.log.read_text())[1])

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=self.env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"obliviate serve not ready after {timeout_s:.0f} s")

    def tickets(self, count: int) -> list[str]:
        """`count` tickets to poll, filed through the API."""
        ids = []
        for i in range(count):
            body = json.loads(json.dumps(TICKET).replace("SUBJECT", f"{self.run}-poll-{i}"))
            body["subject_id"] = f"{self.run}-poll-{i}"
            headers = {"X-API-Key": self.keys[i % KEYS]}
            response = httpx.post(f"{self.url}/v1/deletion-requests", json=body, headers=headers)
            response.raise_for_status()
            ids.append(response.json()["id"])
        return ids

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{self.run}:*"):
            client.delete(key)
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{self.run}" WITH (FORCE)')


def run_wrk(service: Service, ids: list[str], seconds: int, connections: int,
            rate: int = 0) -> dict:  # fmt: skip
    """One scenario: status polls of `ids` (none: submits); `rate` > 0 paces it."""
    body = json.dumps({**TICKET, "subject_id": "SUBJECT"})
    script = LUA % {
        "rate": rate,
        "threads": THREADS,
        "keys": ", ".join(f'"{key}"' for key in service.keys),
        "ids": ", ".join(f'"{ticket}"' for ticket in ids),
        # Each call its own subjects: a second submit run reusing the first one's
        # Idempotency-Keys would time replays, not filings.
        "run": f"{service.run}-{uuid.uuid4().hex[:6]}",
        "body": body,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    command = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", file.name, service.url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    os.unlink(file.name)
    line = next(li for li in done.stdout.splitlines() if li.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def api_cpu_s(server_pid: int) -> float:
    """CPU seconds `serve` and its worker processes have used so far (Linux /proc). Per
    request it is the API's own cost, which the shared cores' noise moves far less than the
    latency: two runs at one commit differed by up to 80% in throughput."""
    pids, total = [server_pid], 0
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        pids += [int(pid) for pid in (task / "children").read_text().split()]
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def row(scenario: str, connections: int, result: dict, paced: bool) -> str:
    """Saturated: judged on throughput; paced: on p95, with the schedule kept (≥ 99% of the
    target rate sent: wrk times a request from when it is sent, so a server that cannot keep
    up shows as requests not sent, not as a low latency)."""
    min_rps, max_p95 = TARGETS[scenario]
    errors = (result["status_errors"] + result["socket_errors"]) / max(result["requests"], 1)
    p95 = result["p95_us"] / 1000
    if paced:
        load, target = f"paced {min_rps}/s", f"p95 < {max_p95} ms at {min_rps} req/s"
        met = p95 < max_p95 and result["rps"] >= 0.99 * min_rps
    else:
        load, target = "saturated", f"≥ {min_rps} req/s"
        met = result["rps"] >= min_rps
    met = met and errors < MAX_ERROR_SHARE
    return (
        f"| {scenario} | {load} | {connections} | {result['requests']} | "
        f"{result['rps']:.0f} | {result['p50_us'] / 1000:.0f} | {p95:.0f} | "
        f"{result['p99_us'] / 1000:.0f} | {result['cpu_ms']:.1f} | {errors:.2%} | {target}"
        f" | {'met' if met else '**missed**'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--condition", default="idle", help="what else the machine was doing")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    home = Path(tempfile.mkdtemp(prefix="obliviate-load-"))
    service = Service(home)
    rows = []
    try:
        polled = service.tickets(KEYS * 4)
        for scenario, ids in (("status", polled), ("submit", [])):
            for paced in (False, True):
                rate = TARGETS[scenario][0] if paced else 0
                used = api_cpu_s(service.server.pid)
                result = run_wrk(service, ids, args.seconds, args.connections, rate)
                used = api_cpu_s(service.server.pid) - used
                result["cpu_ms"] = 1000 * used / max(result["requests"], 1)
                rows.append(row(scenario, args.connections, result, paced))
    finally:
        service.close()
        shutil.rmtree(home, ignore_errors=True)
    command = shlex.join(["python", "benchmarks/load.py", *sys.argv[1:]])
    write(rows, command, args.condition, service.processes)
    print("\n".join(rows))


def write(rows: list[str], command: str, condition: str, processes: int) -> None:
    """One section per run under a header written once."""
    if not RESULTS.is_file():
        RESULTS.write_text(
            "# The API under load (benchmarks/load.py)\n\n"
            "`obliviate serve` with its default settings (uvicorn processes: given per run; rate "
            "limit 6000/min per key) on PostgreSQL + Redis, loopback; wrk (2 threads) over "
            f"{KEYS} requester keys; no worker consuming the queue. status: GET one of 32 "
            "tickets; submit: POST a new one-record ticket (its own Idempotency-Key). Each "
            "scenario saturated (its throughput) and paced at its target rate (its latency). "
            "Latencies in ms; API CPU: the serve processes' CPU time per request. Client and "
            "server share the machine's cores.\n",
            encoding="utf-8",
        )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"\n## {condition}\n",
        f"Command: `{command}`  ",
        f"Commit: {head_commit()[:10]}; {stamp}; {os.cpu_count()} cores; "
        f"{processes} API processes (serve's default).\n",
        "| scenario | load | connections | requests | req/s | p50 | p95 | p99 | API CPU ms/req "
        "| errors | target | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    with RESULTS.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
